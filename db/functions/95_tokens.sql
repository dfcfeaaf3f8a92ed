-- Named API tokens and the audit of the admin API (docs/api.md, "Tokens and scopes"; tables in
-- db/migrations/0004_trust.sql).
--
-- A token is kept as its SHA-256 only: vouchd hashes what a caller presents and compares
-- digests. Every instance holds the active tokens in memory; creating or revoking one notifies
-- vouch_tokens (delivered when the transaction commits), and every instance listening reloads.
-- A revoked token keeps its row, and its name, for the audit that names it.
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c).

-- What vouchd loads: the tokens that open a door (rows, read in binary).
CREATE OR REPLACE FUNCTION vouch_tokens_active()
RETURNS TABLE (name text, scope text, sha256 bytea) LANGUAGE sql STABLE AS $$
    SELECT t.name, t.scope, t.sha256 FROM api_tokens t WHERE t.revoked_at IS NULL ORDER BY t.name
$$;

CREATE OR REPLACE FUNCTION vouch_token_object(t api_tokens) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('name', t.name, 'scope', t.scope,
                             'created_at', vouch_time(t.created_at), 'created_by', t.created_by,
                             'revoked_at', vouch_time(t.revoked_at))
$$;

-- A new token: its object, or NULL when the name is taken (revoked tokens keep theirs).
CREATE OR REPLACE FUNCTION vouch_token_create(p_name text, p_scope text, p_sha256 bytea,
                                              p_created_by text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    t api_tokens;
BEGIN
    INSERT INTO api_tokens (name, scope, sha256, created_by)
    VALUES (p_name, p_scope, p_sha256, p_created_by)
    ON CONFLICT (name) DO NOTHING
    RETURNING * INTO t;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('vouch_tokens', p_name);
    RETURN vouch_token_object(t)::text;
END
$$;

-- Every token, active or revoked, oldest first; never the hash.
CREATE OR REPLACE FUNCTION vouch_token_list() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(json_agg(vouch_token_object(t) ORDER BY t.created_at, t.name), '[]')::text
    FROM api_tokens t
$$;

-- Revokes a token: its object afterwards (revoking a revoked token changes nothing), or NULL
-- when there is none of that name.
CREATE OR REPLACE FUNCTION vouch_token_revoke(p_name text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    t api_tokens;
BEGIN
    UPDATE api_tokens SET revoked_at = vouch_now()
    WHERE name = p_name AND revoked_at IS NULL
    RETURNING * INTO t;
    IF FOUND THEN
        PERFORM pg_notify('vouch_tokens', p_name);
    ELSE
        SELECT * INTO t FROM api_tokens WHERE name = p_name;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    RETURN vouch_token_object(t)::text;
END
$$;

-- ---- The audit ----
CREATE OR REPLACE FUNCTION vouch_audit_add(p_token text, p_scope text, p_method text,
                                           p_path text, p_client text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO audit_log (token_name, scope, method, path, client)
    VALUES (p_token, p_scope, p_method, p_path, p_client);
$$;

-- A page of the audit, newest first: entries before p_before (NULL: from the newest).
CREATE OR REPLACE FUNCTION vouch_audit_list(p_before bigint, p_limit integer) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(json_agg(json_build_object(
               'id', a.id, 'at', vouch_time(a.at), 'token', a.token_name, 'scope', a.scope,
               'method', a.method, 'path', a.path, 'client', a.client) ORDER BY a.id DESC),
           '[]')::text
    FROM (SELECT * FROM audit_log
          WHERE p_before IS NULL OR id < p_before
          ORDER BY id DESC LIMIT p_limit) a
$$;
