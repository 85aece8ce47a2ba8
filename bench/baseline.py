"""The classic tutorial script that apifetch is measured against.

requests with a urllib3 Retry mounted on the session, every page's records collected in a
list, nested objects flattened to dotted keys and arrays dumped as JSON, then one
csv.DictWriter pass over the union of keys. Usage: baseline.py URL PER_PAGE OUT.CSV
"""

import csv
import json
import sys

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


def flatten(record, prefix=""):
    row = {}
    for key, value in record.items():
        column = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            row.update(flatten(value, column + "."))
        elif isinstance(value, (list, dict)):
            row[column] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        else:
            row[column] = value
    return row


def fetch_all(url, per_page):
    session = requests.Session()
    retry = Retry(
        total=5,
        backoff_factor=1,
        status_forcelist=[429, 500, 502, 503, 504],
        respect_retry_after_header=True,
    )
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    records = []
    page = 1
    while True:
        response = session.get(url, params={"page": page, "per_page": per_page}, timeout=30)
        response.raise_for_status()
        body = response.json()
        data = body.get("data", [])
        if not data:
            break
        records.extend(flatten(r) for r in data)
        if not body.get("has_more"):
            break
        page += 1
    return records


def main():
    url, per_page, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    records = fetch_all(url, per_page)
    fieldnames = []
    seen = set()
    for record in records:
        for key in record:
            if key not in seen:
                seen.add(key)
                fieldnames.append(key)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(records)


if __name__ == "__main__":
    main()
