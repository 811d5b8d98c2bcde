"""The JSON columns go through orjson (app/json_codec.py): what is written is JSON both databases accept, and
what an older version wrote (Python's `NaN`, spaces) still reads."""
from __future__ import annotations

import math

from sqlalchemy import select, text

from app import json_codec
from app.extensions import db as _db
from app.models import PriceDigest


def test_nan_is_written_as_null_and_python_s_nan_still_reads():
    assert json_codec.dumps({"a": math.nan, "b": [1.5, math.inf], 2: None}) == '{"a":null,"b":[1.5,null],"2":null}'
    assert math.isnan(json_codec.loads('{"a": NaN}')["a"])  # Python's own writing, as stored before
    assert json_codec.loads(b'{"a": 1}') == {"a": 1}


def test_a_json_column_round_trips_and_a_value_python_wrote_before_still_reads(app, clock):
    now = clock()
    with app.app_context():
        # A NaN in a JSON value no longer reaches PostgreSQL as `NaN` (which it refuses): it is stored as null.
        _db.session.add(PriceDigest(amber_site_id="new", digests={"rows": {"general@1/5": 7}, "odd": math.nan}, stored_at=now))
        _db.session.commit()
        if _db.engine.dialect.name == "sqlite":  # SQLite keeps JSON as text: a row as json.dumps wrote it
            _db.session.execute(text("INSERT INTO price_digests (amber_site_id, digests, stored_at) VALUES ('old', :d, :t)"),
                                {"d": '{"rows": {"general@1/5": 9}, "odd": NaN}', "t": now.replace(tzinfo=None)})
            _db.session.commit()
        _db.session.expire_all()
        rows = {r.amber_site_id: r.digests for r in _db.session.scalars(select(PriceDigest))}
    assert rows["new"] == {"rows": {"general@1/5": 7}, "odd": None}
    if "old" in rows:
        assert rows["old"]["rows"] == {"general@1/5": 9} and math.isnan(rows["old"]["odd"])
