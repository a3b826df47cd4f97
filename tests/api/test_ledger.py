"""Campaigns of brand accounts, partners, and joining them."""

from __future__ import annotations

from fastapi.testclient import TestClient

from dropyard.app import Dropyard
from tests.api.helpers import V1, Tenant, make_tenant

CAMPAIGN = {
    "id": 1001,
    "name": "Spring",
    "currency": "usd",
    "payout_rate": "0.05",
    "trackers": [9001, 9002],
    "bonus_tiers": [{"threshold": "10000", "bonus": "100"}],
}


def test_campaigns_and_partners(app: Dropyard, client: TestClient, acme: Tenant) -> None:
    made = client.post(f"{V1}/campaigns", json=CAMPAIGN, headers=acme.auth())
    assert made.status_code == 201, made.text
    campaign = made.json()
    assert (campaign["currency"], campaign["payout_rate"]) == ("USD", "0.05")
    assert campaign["trackers"] == [9001, 9002]
    assert campaign["bonus_tiers"] == [{"threshold": "10000", "bonus": "100"}]
    assert client.get(f"{V1}/campaigns", headers=acme.auth()).json() == [campaign]

    for body, code, field in (
        ({**CAMPAIGN, "id": 1002, "currency": "EURO", "trackers": [9003]}, 422, "currency"),
        ({**CAMPAIGN, "id": 1002, "payout_rate": "2", "trackers": [9003]}, 422, "payout_rate"),
        ({**CAMPAIGN, "id": 1002, "payout_rate": "lots", "trackers": [9003]}, 422, "payout_rate"),
        ({**CAMPAIGN, "id": 1002, "trackers": []}, 422, "tracker"),
        ({**CAMPAIGN, "trackers": [9004]}, 409, "id"),
        ({**CAMPAIGN, "id": 1003, "account": acme.account_id}, 422, "account"),
    ):
        answer = client.post(f"{V1}/campaigns", json=body, headers=acme.auth())
        assert answer.status_code == code, answer.text
        assert field in answer.json()["errors"], answer.json()

    partner = client.post(f"{V1}/partners", json={"id": 77, "name": "Coupons"}, headers=acme.auth())
    assert partner.status_code == 201
    assert client.get(f"{V1}/partners", headers=acme.auth()).json() == []
    join = {"campaign_id": 1001, "payout_rate": "0.07"}
    joined = client.post(f"{V1}/partners/77/join", json=join, headers=acme.auth())
    assert joined.status_code == 201, joined.text
    assert joined.json()["payout_rate"] == "0.07"
    assert [p["id"] for p in client.get(f"{V1}/partners", headers=acme.auth()).json()] == [77]
    again = client.post(f"{V1}/partners/77/join", json=join, headers=acme.auth())
    assert again.status_code == 409
    missing = client.post(f"{V1}/partners/78/join", json=join, headers=acme.auth())
    assert missing.status_code == 404


def test_a_partner_account_owns_its_partner_and_has_no_campaigns(
    app: Dropyard, client: TestClient
) -> None:
    blog = make_tenant(app, "partner")
    refused = client.post(f"{V1}/campaigns", json=CAMPAIGN, headers=blog.auth())
    assert refused.status_code == 422
    assert "account" in refused.json()["errors"]
    made = client.post(f"{V1}/partners", json={"id": 55, "name": "Blog"}, headers=blog.auth())
    assert made.status_code == 201
    assert [p["id"] for p in client.get(f"{V1}/partners", headers=blog.auth()).json()] == [55]
