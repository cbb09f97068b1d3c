#!/usr/bin/env python3
"""Seeded generator of labeled documents for the local model's accuracy benchmark.

Four kinds of short business documents, each with the agent that extracts it (an
instruction and an output schema with field descriptions) and the exact answer:

* email:   sender name, company and email address, with a second person as distractor;
* invoice: invoice number, vendor, total amount and due date;
* address: a delivery note's recipient name, street, city and postal code;
* receipt: merchant, date and total, among item prices.

``generate(count, seed)`` returns the same documents for the same arguments; the kinds
alternate, so consecutive requests come from different agents (as on a busy server).
Run it directly to print them as JSON lines.

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import json
import random
import sys

FIRST = [
    "Ada", "Mei", "Omar", "Lena", "Tomás", "Priya", "Jonas", "Aisha", "Pierre", "Hana",
    "Diego", "Freya", "Kofi", "Ingrid", "Ravi", "Chloé", "Mateo", "Yuki", "Nadia", "Erik",
    "Sofia", "Liam", "Zara", "Hugo", "Amara", "Felix", "Leila", "Noah", "Elif", "Marco",
]
LAST = [
    "Lovelace", "Dubois", "Haddad", "Fischer", "Alvarez", "Sharma", "Berg", "Okafor",
    "Laurent", "Tanaka", "Moreno", "Lindqvist", "Mensah", "Novak", "Iyer", "Rossi",
    "Kowalski", "Nakamura", "Petrov", "Hansen", "Costa", "Murphy", "Yilmaz", "Weber",
]
COMPANY_HEAD = [
    "Ironbridge", "Bluefjord", "Northwind", "Copperleaf", "Silverline", "Redwood",
    "Brightwave", "Stonegate", "Greenhill", "Harborview", "Suncrest", "Blackpine",
]
COMPANY_TAIL = [
    "Networks AG", "Logistics Ltd", "Analytics GmbH", "Foods SA", "Robotics Inc",
    "Textiles BV", "Energy SAS", "Labs LLC", "Consulting Oy", "Pharma SpA",
]
CITIES = [
    ("Lyon", "69002"), ("Hamburg", "20095"), ("Leeds", "LS1 4AP"), ("Porto", "4050-123"),
    ("Utrecht", "3511 AB"), ("Turin", "10121"), ("Graz", "8010"), ("Aarhus", "8000"),
    ("Gdansk", "80-831"), ("Ghent", "9000"), ("Bilbao", "48001"), ("Tampere", "33100"),
]
STREETS = [
    "Rue de la République", "Mönckebergstraße", "Park Row", "Rua das Flores",
    "Oudegracht", "Via Roma", "Herrengasse", "Søndergade", "Długa", "Veldstraat",
    "Gran Vía", "Hämeenkatu",
]
MERCHANTS = [
    "Corner Bakery", "Fresh Market", "City Pharmacy", "Book Nook", "Green Grocer",
    "Hardware Depot", "Café Aurora", "Sports Corner", "Pet Palace", "Tech Outlet",
]
ITEMS = [
    "Coffee", "Bread", "Apples", "Notebook", "Batteries", "Shampoo", "Cheese", "Tea",
    "Pens", "Dog food", "Cable", "Soap", "Milk", "Rice",
]
SUBJECTS = [
    "the delivery schedule", "our renewal quote", "the March workshop",
    "the open support ticket", "next quarter's order", "the audit documents",
]
ROLES = ["Finance Director", "Head of Sales", "Account Manager", "Operations Lead", "CTO"]

INSTRUCTIONS = {
    "email": "Extract the sender of this email: their name, company and email address.",
    "invoice": "Extract the invoice number, the vendor, the total amount and the due date.",
    "address": "Extract the recipient's name and postal address from this delivery note.",
    "receipt": "Extract the merchant, the date and the total paid from this receipt.",
}

SCHEMAS = {
    "email": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "full name of the sender", "maxLength": 80},
            "company": {"type": "string", "description": "the sender's company", "maxLength": 80},
            "email": {"type": "string", "description": "the sender's email address", "maxLength": 80},
        },
        "required": ["name", "company", "email"],
    },
    "invoice": {
        "type": "object",
        "properties": {
            "invoice_number": {"type": "string", "description": "as printed, e.g. INV-2024-0042", "maxLength": 40},
            "vendor": {"type": "string", "description": "the company that issued the invoice", "maxLength": 80},
            "total": {"type": "number", "description": "total amount due"},
            "due_date": {"type": "string", "description": "date in YYYY-MM-DD format", "maxLength": 10},
        },
        "required": ["invoice_number", "vendor", "total", "due_date"],
    },
    "address": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "the recipient's full name", "maxLength": 80},
            "street": {"type": "string", "description": "house number and street", "maxLength": 80},
            "city": {"type": "string", "maxLength": 40},
            "postal_code": {"type": "string", "maxLength": 12},
        },
        "required": ["name", "street", "city", "postal_code"],
    },
    "receipt": {
        "type": "object",
        "properties": {
            "merchant": {"type": "string", "description": "the shop's name", "maxLength": 60},
            "date": {"type": "string", "description": "date in YYYY-MM-DD format", "maxLength": 10},
            "total": {"type": "number", "description": "the total paid"},
        },
        "required": ["merchant", "date", "total"],
    },
}

KINDS = list(INSTRUCTIONS)


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def company(rng: random.Random) -> str:
    return f"{rng.choice(COMPANY_HEAD)} {rng.choice(COMPANY_TAIL)}"


def email_address(rng: random.Random, name: str, firm: str) -> str:
    first, last = name.lower().split()[0], name.lower().split()[-1]
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", first])
    domain = firm.split()[0].lower() + rng.choice([".com", ".eu", ".io", ".net"])
    return ascii_only(f"{local}@{domain}")


def ascii_only(text: str) -> str:
    table = str.maketrans("áéíóúàèöüåøłñçã", "aeiouaeouaolnca")
    return text.translate(table)


def iso_date(rng: random.Random) -> str:
    return f"{rng.choice([2024, 2025, 2026])}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def amount(rng: random.Random, low: int, high: int) -> float:
    return round(rng.uniform(low, high), 2)


def make_email(rng: random.Random) -> tuple[str, dict]:
    name, firm = person(rng), company(rng)
    other = person(rng)
    address = email_address(rng, name, firm)
    greeting = rng.choice(["Hi", "Hello", "Dear", "Good morning"])
    body = rng.choice([
        f"I'm following up on {rng.choice(SUBJECTS)}. {other} mentioned you might have an update.",
        f"Thanks for the call yesterday. As discussed with {other}, we would like to move "
        f"forward with {rng.choice(SUBJECTS)}.",
        f"Could you send me the latest figures on {rng.choice(SUBJECTS)}? I need them before "
        f"Friday's meeting with {other}.",
    ])
    text = (
        f"From: {name} <{address}>\n"
        f"Subject: {rng.choice(SUBJECTS).capitalize()}\n\n"
        f"{greeting} {other.split()[0]},\n\n{body}\n\n"
        f"Best regards,\n{name}\n{rng.choice(ROLES)}, {firm}"
    )
    return text, {"name": name, "company": firm, "email": address}


def make_invoice(rng: random.Random) -> tuple[str, dict]:
    vendor, customer = company(rng), company(rng)
    number = f"INV-{rng.choice([2024, 2025, 2026])}-{rng.randint(1, 9999):04d}"
    issued, due = iso_date(rng), iso_date(rng)
    lines = [(rng.choice(ITEMS + ["Consulting hours", "Support plan", "Licence"]),
              rng.randint(1, 9), amount(rng, 5, 400)) for _ in range(rng.randint(1, 3))]
    total = round(sum(q * p for _, q, p in lines), 2)
    rows = "\n".join(f"  {item:<18} {qty} x {price:.2f} EUR" for item, qty, price in lines)
    text = (
        f"{vendor}\nINVOICE {number}\n\nBill to: {customer}\nIssue date: {issued}\n\n"
        f"{rows}\n\nTotal due: {total:.2f} EUR\nDue date: {due}\n"
        f"Please quote {number} with your payment."
    )
    return text, {"invoice_number": number, "vendor": vendor, "total": total, "due_date": due}


def make_address(rng: random.Random) -> tuple[str, dict]:
    name, sender = person(rng), person(rng)
    city, postal = rng.choice(CITIES)
    street = f"{rng.randint(1, 180)} {rng.choice(STREETS)}"
    parcel = rng.randint(100000, 999999)
    text = (
        f"DELIVERY NOTE - parcel {parcel}\n\nShip to:\n{name}\n{street}\n{postal} {city}\n\n"
        f"Sender: {sender}, {company(rng)}\nContents: {rng.randint(1, 6)} boxes. "
        f"Leave with a neighbour if nobody is home."
    )
    return text, {"name": name, "street": street, "city": city, "postal_code": postal}


def make_receipt(rng: random.Random) -> tuple[str, dict]:
    merchant = rng.choice(MERCHANTS)
    date = iso_date(rng)
    items = [(rng.choice(ITEMS), amount(rng, 1, 30)) for _ in range(rng.randint(2, 4))]
    total = round(sum(p for _, p in items), 2)
    rows = "\n".join(f"{item:<12} {price:6.2f}" for item, price in items)
    cash = float(int(total) + rng.choice([1, 5, 10]))
    text = (
        f"{merchant.upper()}\n{date} {rng.randint(8, 20):02d}:{rng.randint(0, 59):02d}\n\n"
        f"{rows}\n\nTOTAL        {total:6.2f}\nCASH         {cash:6.2f}\n"
        f"CHANGE       {cash - total:6.2f}\n\nThank you for shopping at {merchant}!"
    )
    return text, {"merchant": merchant, "date": date, "total": total}


MAKERS = {"email": make_email, "invoice": make_invoice, "address": make_address,
          "receipt": make_receipt}


def generate(count: int = 120, seed: int = 7) -> list[dict]:
    """``count`` documents, kinds in turn, the same for the same seed."""
    rng = random.Random(seed)
    documents = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        text, expected = MAKERS[kind](rng)
        documents.append({
            "id": index,
            "kind": kind,
            "instruction": INSTRUCTIONS[kind],
            "schema": SCHEMAS[kind],
            "text": text,
            "expected": expected,
        })
    return documents


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    for document in generate(args.count, args.seed):
        sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
