"""A SOQL subset, translated to SQLite: what the package and its tests ask of an org.

``SELECT f1, f2 | COUNT() FROM Obj [WHERE ...] [ORDER BY f [ASC|DESC], ...] [LIMIT n]`` with
``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``IN (...)``, ``NOT IN``, ``LIKE``, ``AND``, ``OR``,
``NOT`` and parentheses; string, number, boolean, ``null`` and datetime literals. Field names are
checked against the org schema and answered with the org's own error when unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from sf_sandbox.ids import to_18_or_same
from sf_sandbox.orgschema import SObject
from sf_sandbox.store import parse_datetime

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<dt>\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:?\d\d))|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<op><=|>=|!=|<>|=|<|>|\(|\)|,)|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)


class SoqlError(ValueError):
    """A query the org would refuse: ``code`` is its errorCode."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Query:
    sobject: SObject
    fields: list[str]  # canonical names; empty for COUNT()
    count: bool
    where_sql: str
    params: list
    order_sql: str
    limit: int | None

    def sql(self, offset: int = 0, page: int | None = None) -> tuple[str, list]:
        table = f'"{self.sobject.name}"'
        if self.count:
            return f"SELECT COUNT(*) FROM {table}{self.where_sql}", list(self.params)
        columns = ", ".join(f'"{f}"' for f in self.fields)
        limit = self.limit if self.limit is not None else -1
        if page is not None:
            limit = page if limit < 0 else max(0, min(page, limit - offset))
        return (
            f"SELECT {columns} FROM {table}{self.where_sql}{self.order_sql} LIMIT {limit} OFFSET {offset}",
            list(self.params),
        )


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text[pos : pos + 20]}'")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, objects: dict[str, SObject]) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.objects = objects
        self.params: list = []
        self.obj: SObject | None = None

    def peek(self, word: str | None = None) -> bool:
        if self.i >= len(self.toks):
            return False
        kind, value = self.toks[self.i]
        return word is None or value.upper() == word.upper()

    def take(self, word: str | None = None) -> str:
        if self.i >= len(self.toks) or (word and self.toks[self.i][1].upper() != word.upper()):
            got = self.toks[self.i][1] if self.i < len(self.toks) else "end of query"
            raise SoqlError("MALFORMED_QUERY", f"expecting '{word or 'a token'}', found '{got}'")
        self.i += 1
        return self.toks[self.i - 1][1]

    def field(self, name: str) -> str:
        assert self.obj is not None
        f = self.obj.field(name)
        if f is None:
            raise SoqlError(
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{self.obj.name}'. If you are "
                "attempting to use a custom field, be sure to append the '__c' after the custom field "
                "name. Please reference your WSDL or the describe call for the appropriate names.",
            )
        return f.name

    def parse(self) -> Query:
        self.take("SELECT")
        names, count = [], False
        if self.peek("COUNT"):
            self.take("COUNT"), self.take("("), self.take(")")
            count = True
        else:
            names.append(self.take())
            while self.peek(","):
                self.take(",")
                names.append(self.take())
        self.take("FROM")
        obj_name = self.take()
        self.obj = self.objects.get(obj_name.lower())
        if self.obj is None:
            raise SoqlError("INVALID_TYPE", f"sObject type '{obj_name}' is not supported.")
        fields = [self.field(n) for n in names]
        where = ""
        if self.peek("WHERE"):
            self.take("WHERE")
            where = " WHERE " + self.condition()
        order = ""
        if self.peek("ORDER"):
            self.take("ORDER"), self.take("BY")
            parts = []
            while True:
                name = self.field(self.take())
                direction = self.take().upper() if self.peek("ASC") or self.peek("DESC") else "ASC"
                parts.append(f'"{name}" {direction}')
                if not self.peek(","):
                    break
                self.take(",")
            order = " ORDER BY " + ", ".join(parts)
        limit = None
        if self.peek("LIMIT"):
            self.take("LIMIT")
            limit = int(self.take())
        if self.i != len(self.toks):
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{self.toks[self.i][1]}'")
        return Query(self.obj, fields, count, where, self.params, order, limit)

    def condition(self) -> str:
        parts = [self.conjunction()]
        while self.peek("OR"):
            self.take("OR")
            parts.append(self.conjunction())
        return " OR ".join(parts) if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def conjunction(self) -> str:
        parts = [self.term()]
        while self.peek("AND"):
            self.take("AND")
            parts.append(self.term())
        return " AND ".join(parts)

    def term(self) -> str:
        if self.peek("NOT"):
            self.take("NOT")
            return f"NOT ({self.term()})"
        if self.peek("("):
            self.take("(")
            inner = self.condition()
            self.take(")")
            return f"({inner})"
        name = self.field(self.take())
        assert self.obj is not None
        kind = self.obj.field(name).kind  # type: ignore[union-attr]
        negate = False
        if self.peek("NOT"):
            self.take("NOT")
            negate = True
        op = self.take().upper()
        if op == "IN":
            self.take("(")
            values = [self.value(kind)]
            while self.peek(","):
                self.take(",")
                values.append(self.value(kind))
            self.take(")")
            self.params.extend(values)
            return f'"{name}" {"NOT IN" if negate else "IN"} ({", ".join("?" * len(values))})'
        value = self.value(kind)
        if value is None and op in ("=", "!=", "<>"):
            return f'"{name}" IS {"NOT " if op != "=" else ""}NULL'
        sql_op = {"=": "=", "!=": "!=", "<>": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "LIKE": "LIKE"}.get(op)
        if sql_op is None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected operator '{op}'")
        self.params.append(value)
        return f'"{name}" {sql_op} ?'

    def value(self, kind: str) -> str | None:
        tok_kind, raw = self.toks[self.i]
        self.i += 1
        if tok_kind == "str":
            text = re.sub(r"\\(.)", r"\1", raw[1:-1])
            return to_18_or_same(text) if kind in ("id", "reference") else text
        if tok_kind == "dt":
            return parse_datetime(raw)
        if raw.lower() == "null":
            return None
        if raw.lower() in ("true", "false"):
            return raw.lower()
        if tok_kind == "num":
            return raw
        raise SoqlError("MALFORMED_QUERY", f"unexpected value '{raw}'")


def parse(text: str, objects: dict[str, SObject], all_rows: bool = False) -> Query:
    """A query of the live records; ``all_rows`` (``queryAll``): deleted ones too, as an org keeps
    them in its recycle bin."""
    query = _Parser(text, objects).parse()
    if all_rows:
        return query
    live = "coalesce(\"IsDeleted\", '') <> 'true'"  # booleans are stored as the text Salesforce sends
    where = f" WHERE {live} AND ({query.where_sql[7:]})" if query.where_sql else f" WHERE {live}"
    return replace(query, where_sql=where)
