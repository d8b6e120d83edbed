-- `make bench` only, b (the floor): the day's records that ours writes (the sample's expected outcome
-- 'written'), as ours sends them: the member Id in its 18-character form, an empty text as null (COPY
-- writes null as #N/A, the Bulk CSV null ours writes). Category first and sorted: the floor splits its
-- jobs by category as ours does (one validate task each) without parsing the CSV.
-- The subquery placeholder below is replaced by the text of bench/mapped_day.sql.
SELECT m."Category__c", m."Thrive_Event_Id__c", m."Activity_Group__c", m."Activity__c", m."Activity_Date__c",
       CASE WHEN m."Contact__c" IS NOT NULL THEN c.sf_id END AS "Contact__c",
       CASE WHEN m."Lead__c" IS NOT NULL THEN c.sf_id END    AS "Lead__c",
       m."Thrive_Account_Id__c", m."Message_Id__c", nullif(m."Message_Name__c", '') AS "Message_Name__c",
       nullif(m."Detail__c", '') AS "Detail__c"
FROM ({mapped_day}) m
JOIN thrive_sample.expected_outcomes x
  ON m."Thrive_Event_Id__c" = x.account_id || ':' || x.category || ':' || x.event_id
JOIN thrive_sample.crm_records c ON left(c.sf_id, 15) = left(coalesce(m."Contact__c", m."Lead__c"), 15)
WHERE x.outcome = 'written'
ORDER BY m."Category__c"
