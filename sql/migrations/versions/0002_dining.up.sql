-- Dining's write side. Each context has its own schema and no foreign key crosses schemas:
-- contexts agree through messages, so one context's rows never wait on another's.

-- restaurant: what a restaurant offers, and the seats its slots have given out.
CREATE TABLE restaurant.restaurant (
    restaurant_id     uuid        PRIMARY KEY,
    owner             text        NOT NULL,
    name              text        NOT NULL,
    cuisine           text        NOT NULL,
    slots             text[]      NOT NULL,
    capacity_per_slot integer     NOT NULL,
    deposit_amount    integer     NOT NULL,
    registered_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT restaurant_slots_check CHECK (cardinality(slots) BETWEEN 1 AND 48),
    CONSTRAINT restaurant_capacity_check CHECK (capacity_per_slot > 0),
    CONSTRAINT restaurant_deposit_check CHECK (deposit_amount > 0)
);
CREATE INDEX restaurant_owner_idx ON restaurant.restaurant (owner);
CREATE INDEX restaurant_listing_idx ON restaurant.restaurant (name, restaurant_id);

-- One row per slot that has bookings. Capacity is copied from the restaurant when the first
-- booking arrives so that the CHECK is row-local: two transactions booking the last seats
-- serialise on this row, and the second one's UPDATE fails the CHECK instead of overbooking.
CREATE TABLE restaurant.slot_booking (
    restaurant_id uuid    NOT NULL REFERENCES restaurant.restaurant,
    date          date    NOT NULL,
    slot          text    NOT NULL,
    capacity      integer NOT NULL,
    seats_taken   integer NOT NULL,
    PRIMARY KEY (restaurant_id, date, slot),
    CONSTRAINT slot_booking_capacity CHECK (seats_taken BETWEEN 0 AND capacity)
);

-- One row per accepted reservation: releasing looks it up, so a second release finds it
-- RELEASED and gives nothing back twice.
CREATE TABLE restaurant.booking (
    reservation_id uuid        PRIMARY KEY,
    restaurant_id  uuid        NOT NULL,
    date           date        NOT NULL,
    slot           text        NOT NULL,
    party_size     integer     NOT NULL,
    status         text        NOT NULL DEFAULT 'ACCEPTED',
    accepted_at    timestamptz NOT NULL DEFAULT now(),
    released_at    timestamptz,
    FOREIGN KEY (restaurant_id, date, slot) REFERENCES restaurant.slot_booking,
    CONSTRAINT booking_party_check CHECK (party_size > 0),
    CONSTRAINT booking_status_check CHECK (status IN ('ACCEPTED', 'RELEASED')),
    CONSTRAINT booking_released_check CHECK ((status = 'RELEASED') = (released_at IS NOT NULL))
);

-- reservation: the customer's reservation and its rating (once: the primary key says so).
CREATE TABLE reservation.reservation (
    reservation_id  uuid        PRIMARY KEY,
    customer        text        NOT NULL,
    restaurant_id   uuid        NOT NULL,
    restaurant_name text        NOT NULL,
    date            date        NOT NULL,
    slot            text        NOT NULL,
    party_size      integer     NOT NULL,
    deposit_amount  integer     NOT NULL,
    status          text        NOT NULL DEFAULT 'PENDING',
    status_reason   text,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reservation_party_check CHECK (party_size > 0),
    CONSTRAINT reservation_deposit_check CHECK (deposit_amount > 0),
    CONSTRAINT reservation_status_check CHECK (status IN (
        'PENDING', 'DEPOSIT_PAID', 'CONFIRMED', 'REJECTED', 'CANCELLED', 'COMPLETED', 'NO_SHOW'
    ))
);
CREATE INDEX reservation_customer_idx ON reservation.reservation (customer, requested_at DESC);

CREATE TABLE reservation.rating (
    reservation_id uuid        PRIMARY KEY REFERENCES reservation.reservation,
    score          smallint    NOT NULL,
    comment        text,
    rated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rating_score_check CHECK (score BETWEEN 1 AND 5),
    CONSTRAINT rating_comment_check CHECK (char_length(comment) <= 500)
);

-- deposit: one row per reservation once the provider has answered the charge.
CREATE TABLE deposit.deposit (
    reservation_id   uuid        PRIMARY KEY,
    customer         text        NOT NULL,
    amount           integer     NOT NULL,
    status           text        NOT NULL,
    charge_reference text        NOT NULL,
    failure_reason   text,
    refund_reference text,
    charged_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deposit_amount_check CHECK (amount > 0),
    CONSTRAINT deposit_status_check CHECK (status IN ('PAID', 'FAILED', 'REFUNDED', 'FORFEITED')),
    CONSTRAINT deposit_failed_check CHECK ((status = 'FAILED') = (failure_reason IS NOT NULL)),
    CONSTRAINT deposit_refunded_check CHECK ((status = 'REFUNDED') = (refund_reference IS NOT NULL))
);
CREATE INDEX deposit_customer_idx ON deposit.deposit (customer);

-- recommendation: an entry per paid reservation (kept DELETED, not removed, so that a late
-- duplicate cannot bring it back), and the restaurants suspended from the programme.
CREATE TABLE recommendation.entry (
    reservation_id uuid        PRIMARY KEY,
    restaurant_id  uuid        NOT NULL,
    customer       text        NOT NULL,
    status         text        NOT NULL DEFAULT 'REGISTERED',
    registered_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,
    CONSTRAINT entry_status_check CHECK (status IN ('REGISTERED', 'DELETED')),
    CONSTRAINT entry_deleted_check CHECK ((status = 'DELETED') = (deleted_at IS NOT NULL))
);
CREATE INDEX entry_restaurant_idx ON recommendation.entry (restaurant_id)
    WHERE status = 'REGISTERED';

CREATE TABLE recommendation.suspension (
    restaurant_id uuid        PRIMARY KEY,
    reason        text        NOT NULL,
    suspended_at  timestamptz NOT NULL DEFAULT now()
);
