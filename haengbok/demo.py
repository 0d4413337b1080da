"""Demo data for `haengbok up`, and the walk-through it prints (the seed's scenario in order)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import psycopg

from outbox.envelope import MessageContext

DEMO_OWNER = "demo-owner"
RESTAURANTS: list[dict[str, Any]] = [
    {"name": "Haengbok Bistro", "cuisine": "korean", "slots": ["12:00", "18:00", "19:30"],
     "capacity_per_slot": 20, "deposit_amount": 10_000},
    {"name": "Seoul Noodle House", "cuisine": "noodles", "slots": ["11:30", "12:30", "18:30"],
     "capacity_per_slot": 12, "deposit_amount": 5_000},
    {"name": "Han River Grill", "cuisine": "bbq", "slots": ["18:00", "20:00"],
     "capacity_per_slot": 30, "deposit_amount": 20_000},
]  # fmt: skip


async def load_demo_restaurants(database_url: str) -> list[uuid.UUID]:
    """Register the demo restaurants once (a second `up` finds them and adds nothing)."""
    from api.dining.restaurants import register_restaurant

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT restaurant_id FROM restaurant.restaurant WHERE owner = %s ORDER BY name",
            [DEMO_OWNER],
        )
        existing = [row[0] for row in await cur.fetchall()]
        if existing:
            return existing
        ids = []
        for spec in RESTAURANTS:
            async with conn.transaction():
                restaurant, _ = await register_restaurant(
                    conn, MessageContext.new(DEMO_OWNER), owner=DEMO_OWNER, **spec
                )
            ids.append(restaurant.restaurant_id)
        await conn.execute("SELECT pg_notify('haengbok_outbox', '')")
        return ids


def load_demo(database_url: str) -> list[uuid.UUID]:
    return asyncio.run(load_demo_restaurants(database_url))


def walkthrough(
    base_url: str, restaurant_id: uuid.UUID, payment_url: str = "http://127.0.0.1:8010"
) -> str:
    """Copy-paste commands that walk through the seed's scenario against the running system."""
    day = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    hb = ".venv/bin/haengbok"
    return f"""
Try the Dining scenario (seed order):
  export ALICE=$({hb} token --role customer --subject alice)
  export OWNER=$({hb} token --role restaurant_owner --subject {DEMO_OWNER})
  export OPS=$({hb} token --role ops --subject ops)
  # 1. restaurants
  curl -s {base_url}/dining/restaurants -H "Authorization: Bearer $ALICE"
  # 2-4. reserve; the deposit is charged, the reservation goes to recommendations and the
  #      restaurant, then it is confirmed (Prefer: wait returns the settled state)
  curl -s -i -X POST {base_url}/dining/reservations -H "Authorization: Bearer $ALICE" \\
       -H 'Content-Type: application/json' -H 'Prefer: wait=5' -H "Idempotency-Key: $(uuidgen)" \\
       -d '{{"restaurant_id": "{restaurant_id}", "date": "{day}", "slot": "19:30", "party_size": 2}}'
  export RES=<reservation_id from the answer>
  # 5-6. deposit status, reservation status
  curl -s {base_url}/dining/reservations/$RES/deposit -H "Authorization: Bearer $ALICE"
  curl -s {base_url}/dining/reservations/$RES -H "Authorization: Bearer $ALICE"
  # 9. everything that happened, and the customer center (CQRS read model)
  curl -s "{base_url}/dining/customer-center/timeline?reservation_id=$RES" -H "Authorization: Bearer $ALICE"
  curl -s {base_url}/dining/customer-center/reservations -H "Authorization: Bearer $ALICE"
  # 7. cancel: refund, restaurant told, recommendation entry deleted
  curl -s -X POST {base_url}/dining/reservations/$RES/cancel -H "Authorization: Bearer $ALICE" -H 'Prefer: wait=5'
  # the owner's day: whom to expect, by slot (and whose visit to record)
  curl -s "{base_url}/dining/restaurants/{restaurant_id}/reservations?date={day}" -H "Authorization: Bearer $OWNER"
  # 8. after a visit (slot begun): the owner records it, the customer rates
  #    POST /dining/reservations/$RES/visit {{"outcome": "COMPLETED"}} (owner), then
  #    POST /dining/reservations/$RES/rating {{"score": 5, "comment": "great"}} (customer)
  curl -s {base_url}/dining/recommendations -H "Authorization: Bearer $ALICE"
  # faults: make the payment provider fail, watch reservations get 503 + Retry-After
  curl -s -X PUT {payment_url}/admin/behaviour -H 'Content-Type: application/json' -d '{{"failure_rate": 1.0}}'
  # operations
  curl -s {base_url}/ops/overview -H "Authorization: Bearer $OPS";  {hb} status
"""
