-- 0004: trust decisions for other services (docs/trust.md), scoped API tokens and the audit.
--
--  * Named API tokens with a scope (admin, read, trust), kept as SHA-256 only; the
--    configuration's admin_token stays the bootstrap admin.
--  * Every admin call is audited: who (the token's name), what, when, from where.
--  * A trust question may name a device by its serial number: an index for it.
--
-- The functions are code, in db/functions/ (applied after the migrations at every start).

CREATE TABLE api_tokens (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
    scope       text NOT NULL CHECK (scope IN ('admin', 'read', 'trust')),
    sha256      bytea NOT NULL UNIQUE CHECK (length(sha256) = 32),
    created_at  timestamptz NOT NULL DEFAULT vouch_now(),
    created_by  text,
    revoked_at  timestamptz
);

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT vouch_now(),
    token_name  text NOT NULL,
    scope       text NOT NULL,
    method      text NOT NULL,
    path        text NOT NULL,
    client      text
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE INDEX devices_serial_number ON devices (serial_number);
