-- 0003: hardware-bound identities. vouchd's own ACME server (RFC 8555 with device-attest-01,
-- docs/acme.md) issues the MDM identity certificate for a Secure Enclave key Apple attested.
--
--  * A ClientIdentifier is a one-time code: minted per profile download, optionally for a serial
--    the operator expects, consumed when its certificate is issued.
--  * One order names one identifier, so its authorization and its challenge live in its row.
--  * Every certificate issued is kept; a revoked one never speaks for a device again.
--  * The attestation of the ACME route joins the device's history (attestations.source).
--
-- The functions are code, in db/functions/ (applied after the migrations at every start).

-- Replay-Nonce values: single use, consumed by the request that carries one.
CREATE TABLE acme_nonces (
    nonce      text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX acme_nonces_expiry ON acme_nonces (expires_at);

-- Devices the operator expects (vouchctl devices expect): a profile downloaded with the
-- device's own enrollment token carries a ClientIdentifier tied to its serial.
CREATE TABLE expected_devices (
    serial_number text PRIMARY KEY,
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at    timestamptz NOT NULL DEFAULT vouch_now(),
    enrolled_at   timestamptz  -- its certificate was issued: the token is spent
);

CREATE TABLE acme_client_ids (
    value           text PRIMARY KEY,
    expected_serial text REFERENCES expected_devices ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT vouch_now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,  -- a certificate was issued for it
    used_by_order   text
);
CREATE INDEX acme_client_ids_expiry ON acme_client_ids (expires_at) WHERE used_at IS NULL;

CREATE TABLE acme_accounts (
    id         text PRIMARY KEY,  -- random: the account URL's last segment
    thumbprint bytea NOT NULL UNIQUE CHECK (length(thumbprint) = 32),  -- RFC 7638
    jwk        text NOT NULL,     -- canonical JWK (RFC 7638 members)
    status     text NOT NULL DEFAULT 'valid'
               CHECK (status IN ('valid', 'deactivated', 'revoked')),
    contact    json,
    created_at timestamptz NOT NULL DEFAULT vouch_now()
);

-- An order, its one authorization and its one device-attest-01 challenge.
CREATE TABLE acme_orders (
    id               text PRIMARY KEY,  -- random: the order, authz and challenge URLs
    account_id       text NOT NULL REFERENCES acme_accounts ON DELETE CASCADE,
    client_id        text NOT NULL,     -- the permanent-identifier (acme_client_ids.value)
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'ready', 'processing', 'valid', 'invalid')),
    created_at       timestamptz NOT NULL DEFAULT vouch_now(),
    expires_at       timestamptz NOT NULL,
    token            text NOT NULL,     -- the challenge token (freshness = its SHA-256)
    challenge_status text NOT NULL DEFAULT 'pending'
                     CHECK (challenge_status IN ('pending', 'processing', 'valid', 'invalid')),
    validated_at     timestamptz,
    error            json,              -- the problem document of an invalid order
    -- What the verified attestation states, kept for finalize and for the device's history.
    attested_udid    text,
    attested_serial  text,
    attested_spki    bytea,
    chain            bytea[] COMPRESSION lz4,
    leaf_sha256      bytea,
    generated_at     timestamptz,
    leaf_expires_at  timestamptz,
    properties       json,
    certificate      text               -- acme_certificates.serial once issued
);
CREATE INDEX acme_orders_account ON acme_orders (account_id);
CREATE INDEX acme_orders_expiry ON acme_orders (expires_at);

CREATE TABLE acme_certificates (
    serial         text PRIMARY KEY,    -- lowercase hex
    sha256         bytea NOT NULL UNIQUE CHECK (length(sha256) = 32),
    order_id       text NOT NULL REFERENCES acme_orders,
    udid           text NOT NULL,       -- attested
    serial_number  text NOT NULL,       -- attested
    der            bytea NOT NULL,
    not_before     timestamptz NOT NULL,
    not_after      timestamptz NOT NULL,
    issued_at      timestamptz NOT NULL DEFAULT vouch_now(),
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX acme_certificates_udid ON acme_certificates (udid, issued_at DESC);

-- Which route a verdict came by: a DeviceInformation answer, or the ACME challenge that
-- attested the device's identity key.
ALTER TABLE attestations
    ADD COLUMN source text NOT NULL DEFAULT 'mdm' CHECK (source IN ('mdm', 'acme'));

