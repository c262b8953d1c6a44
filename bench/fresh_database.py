"""Drop and create the PostgreSQL database of a URL, so that a benchmark starts from nothing.

    .venv/bin/python bench/fresh_database.py postgres://user@host:5432/name
"""

import sys

import dj_database_url
import psycopg
from psycopg import sql


def main(url):
    db = dj_database_url.parse(url)
    if "postgresql" not in db["ENGINE"]:
        raise SystemExit(f"not a PostgreSQL URL: {url}")
    with psycopg.connect(host=db["HOST"] or None, port=db["PORT"] or None, user=db["USER"] or None,
                         password=db["PASSWORD"] or None, dbname="postgres", autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db["NAME"])))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
