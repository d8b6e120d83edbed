"""The org's schema: the shipped SFDX metadata for custom objects, plus standard Contact and Lead."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

_NS = {"md": "http://soap.sforce.com/2006/04/metadata"}
SYSTEM_FIELDS = ("Id", "Name", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted")


@dataclass(frozen=True)
class Field:
    """One field: ``kind`` is text, datetime, reference, id, autonumber or boolean."""

    name: str
    kind: str
    length: int | None = None
    required: bool = False
    external_id: bool = False
    unique: bool = False
    reference_to: tuple[str, ...] = ()
    createable: bool = True
    label: str = ""


@dataclass
class SObject:
    name: str
    key_prefix: str
    fields: dict[str, Field] = field(default_factory=dict)  # lower-case name -> Field

    def field(self, name: str) -> Field | None:
        """Field names are case-insensitive in Salesforce."""
        return self.fields.get(name.lower())

    def add(self, f: Field) -> None:
        self.fields[f.name.lower()] = f


def _system(obj: SObject, name_kind: str) -> None:
    obj.add(Field("Id", "id", 18, createable=False, label="Record ID"))
    obj.add(Field("Name", name_kind, 255, createable=name_kind == "text", label="Name"))
    for name in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
        obj.add(Field(name, "datetime", createable=False, label=name))
    obj.add(Field("IsDeleted", "boolean", createable=False, label="Deleted"))


def standard_objects() -> list[SObject]:
    """Contact and Lead as a real org has them (the fields the package and its tests touch)."""
    contact = SObject("Contact", "003")
    lead = SObject("Lead", "00Q")
    for obj in (contact, lead):
        _system(obj, "compound")
        obj.add(Field("FirstName", "text", 40, label="First Name"))
        obj.add(Field("LastName", "text", 80, required=True, label="Last Name"))
        obj.add(Field("Email", "text", 80, label="Email"))
    lead.add(Field("Company", "text", 255, required=True, label="Company"))
    # Set by the org, never by a write: a merged-away record points at the survivor (queryAll sees it,
    # deleted), a converted Lead at the Contact it became.
    contact.add(Field("MasterRecordId", "reference", 18, reference_to=("Contact",), createable=False,
                      label="Master Record ID"))  # fmt: skip
    lead.add(Field("MasterRecordId", "reference", 18, reference_to=("Lead",), createable=False,
                   label="Master Record ID"))  # fmt: skip
    lead.add(Field("IsConverted", "boolean", createable=False, label="Converted"))
    lead.add(Field("ConvertedContactId", "reference", 18, reference_to=("Contact",), createable=False,
                   label="Converted Contact ID"))  # fmt: skip
    # A non-unique external ID, as orgs migrated from another CRM often have: upserts on it can
    # match several records (HTTP 300).
    contact.add(Field("Legacy_Id__c", "text", 40, external_id=True, label="Legacy Id"))
    return [contact, lead]


def _text(node: ET.Element, tag: str) -> str | None:
    found = node.find(f"md:{tag}", _NS)
    return found.text if found is not None else None


def load_custom_object(folder: Path, key_prefix: str) -> SObject:
    """An SFDX object folder (``objects/X__c/``) as an :class:`SObject`."""
    obj = SObject(folder.name, key_prefix)
    meta = ET.parse(folder / f"{folder.name}.object-meta.xml").getroot()
    name_field = meta.find("md:nameField", _NS)
    _system(obj, "autonumber" if name_field is not None and _text(name_field, "type") == "AutoNumber" else "text")
    for path in sorted((folder / "fields").glob("*.field-meta.xml")):
        node = ET.parse(path).getroot()
        kind = {"Text": "text", "DateTime": "datetime", "Lookup": "reference", "Checkbox": "boolean"}.get(
            _text(node, "type") or "", "text"
        )
        obj.add(
            Field(
                name=_text(node, "fullName") or path.name.split(".")[0],
                kind=kind,
                length=int(_text(node, "length") or 0) or (18 if kind == "reference" else None),
                required=_text(node, "required") == "true",
                external_id=_text(node, "externalId") == "true",
                unique=_text(node, "unique") == "true",
                reference_to=tuple(e.text or "" for e in node.findall("md:referenceTo", _NS)),
                label=_text(node, "label") or "",
            )
        )
    return obj


def load_org(metadata_root: Path) -> dict[str, SObject]:
    """``{lower-case object name: SObject}`` for standard objects and every custom object shipped."""
    objects = {o.name.lower(): o for o in standard_objects()}
    for i, folder in enumerate(sorted((metadata_root / "objects").iterdir())):
        if folder.is_dir():
            obj = load_custom_object(folder, f"a0{'ABCDEFGHJK'[i % 10]}")
            objects[obj.name.lower()] = obj
    return objects
