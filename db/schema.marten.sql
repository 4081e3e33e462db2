DO $$
BEGIN      IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'enrolment') THEN
        BEGIN
          EXECUTE 'CREATE SCHEMA IF NOT EXISTS enrolment';
        EXCEPTION
          WHEN duplicate_schema THEN NULL;
          WHEN unique_violation THEN NULL;
        END;
      END IF;

END
$$;


DO $$
BEGIN      IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'enrolment') THEN
        BEGIN
          EXECUTE 'CREATE SCHEMA IF NOT EXISTS enrolment';
        EXCEPTION
          WHEN duplicate_schema THEN NULL;
          WHEN unique_violation THEN NULL;
        END;
      END IF;

END
$$;


CREATE
OR REPLACE FUNCTION enrolment.mt_immutable_timestamp(value text) RETURNS timestamp without time zone LANGUAGE sql IMMUTABLE AS
$function$
select value::timestamp

$function$;


CREATE
OR REPLACE FUNCTION enrolment.mt_immutable_timestamptz(value text) RETURNS timestamp with time zone LANGUAGE sql IMMUTABLE AS
$function$
select value::timestamptz

$function$;


CREATE
OR REPLACE FUNCTION enrolment.mt_immutable_time(value text) RETURNS time without time zone LANGUAGE sql IMMUTABLE AS
$function$
select value::time

$function$;


CREATE
OR REPLACE FUNCTION enrolment.mt_immutable_date(value text) RETURNS date LANGUAGE sql IMMUTABLE AS
$function$
select value::date

$function$;


CREATE
OR REPLACE FUNCTION enrolment.mt_grams_vector(text, use_unaccent boolean DEFAULT false)
        RETURNS tsvector
        LANGUAGE plpgsql
        IMMUTABLE STRICT
AS $function$
BEGIN
RETURN (SELECT array_to_string(enrolment.mt_grams_array($1, use_unaccent), ' ') ::tsvector);
END
$function$;


CREATE
OR REPLACE FUNCTION enrolment.mt_grams_query(text, use_unaccent boolean DEFAULT false)
        RETURNS tsquery
        LANGUAGE plpgsql
        IMMUTABLE STRICT
AS $function$
BEGIN
RETURN (SELECT array_to_string(enrolment.mt_grams_array($1, use_unaccent), ' & ') ::tsquery);
END
$function$;


CREATE
OR REPLACE FUNCTION enrolment.mt_grams_array(words text, use_unaccent boolean DEFAULT false)
        RETURNS text[]
        LANGUAGE plpgsql
        IMMUTABLE STRICT
AS $function$
        DECLARE
result text[];
        DECLARE
word text;
        DECLARE
clean_word text;
BEGIN
                FOREACH
word IN ARRAY string_to_array(words, ' ')
                LOOP
                     clean_word = regexp_replace(enrolment.mt_safe_unaccent(use_unaccent, word), '[^a-zA-Z0-9]+', '','g');
FOR i IN 1 .. length(clean_word)
                     LOOP
                         result := result || quote_literal(substr(lower(clean_word), i, 1));
                         result
:= result || quote_literal(substr(lower(clean_word), i, 2));
                         result
:= result || quote_literal(substr(lower(clean_word), i, 3));
END LOOP;
END LOOP;

RETURN ARRAY(SELECT DISTINCT e FROM unnest(result) AS a(e) ORDER BY e);
END;
$function$;


CREATE OR REPLACE FUNCTION enrolment.mt_jsonb_append(jsonb, text[], jsonb, boolean, jsonb default null::jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $function$
DECLARE
    retval ALIAS FOR $1;
    location ALIAS FOR $2;
    val ALIAS FOR $3;
    if_not_exists ALIAS FOR $4;
    patch_expression ALIAS FOR $5;
    tmp_value jsonb;
BEGIN
    tmp_value = retval #> location;
    IF tmp_value IS NOT NULL AND jsonb_typeof(tmp_value) = 'array' THEN
        CASE
            WHEN NOT if_not_exists THEN
                retval = jsonb_set(retval, location, tmp_value || val, FALSE);
            WHEN patch_expression IS NULL AND jsonb_typeof(val) = 'object' AND NOT tmp_value @> jsonb_build_array(val) THEN
                retval = jsonb_set(retval, location, tmp_value || val, FALSE);
            WHEN patch_expression IS NULL AND jsonb_typeof(val) <> 'object' AND NOT tmp_value @> val THEN
                retval = jsonb_set(retval, location, tmp_value || val, FALSE);
            WHEN patch_expression IS NOT NULL AND jsonb_typeof(patch_expression) = 'array' AND jsonb_array_length(patch_expression) = 0 THEN
                retval = jsonb_set(retval, location, tmp_value || val, FALSE);
            ELSE NULL;
            END CASE;
    END IF;
    RETURN retval;
END;
$function$;


CREATE OR REPLACE FUNCTION enrolment.mt_jsonb_append_key_value(jsonb, text[], jsonb, boolean)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $function$
DECLARE
    retval ALIAS FOR $1;
    location ALIAS FOR $2;
    val ALIAS FOR $3;
    if_not_exists ALIAS FOR $4;
    tmp_value jsonb;
    _key text;
BEGIN
    tmp_value = retval #> location;

    IF tmp_value IS NOT NULL AND jsonb_typeof(tmp_value) = 'object' THEN
        CASE
            WHEN NOT if_not_exists THEN
                retval = jsonb_set(retval, location, tmp_value || val, FALSE);
            WHEN NOT tmp_value ?| ARRAY(SELECT jsonb_object_keys(val)) THEN
                retval = jsonb_set(retval, location, tmp_value || val, FALSE);
            ELSE NULL;
        END CASE;
    END IF;
    RETURN retval;
END;
$function$;


CREATE OR REPLACE FUNCTION enrolment.mt_jsonb_copy(jsonb, text[], text[])
    RETURNS jsonb
    LANGUAGE plpgsql
AS $function$
DECLARE
    retval ALIAS FOR $1;
    src_path ALIAS FOR $2;
    dst_path ALIAS FOR $3;
    tmp_value jsonb;
BEGIN
    tmp_value = retval #> src_path;
    retval = enrolment.mt_jsonb_fix_null_parent(retval, dst_path);
    RETURN jsonb_set(retval, dst_path, tmp_value::jsonb, TRUE);
END;
$function$;


CREATE OR REPLACE FUNCTION enrolment.mt_jsonb_duplicate(jsonb, text[], jsonb)
RETURNS jsonb
LANGUAGE plpgsql
AS $function$
DECLARE
    retval ALIAS FOR $1;
    location ALIAS FOR $2;
    targets ALIAS FOR $3;
    tmp_value jsonb;
    target_path text[];
    target text;
BEGIN
    FOR target IN SELECT jsonb_array_elements_text(targets)
    LOOP
        target_path = enrolment.mt_jsonb_path_to_array(target, '\.');
        retval = enrolment.mt_jsonb_copy(retval, location, target_path);
    END LOOP;

    RETURN retval;
END;
$function$;


CREATE OR REPLACE FUNCTION enrolment.mt_jsonb_fix_null_parent(jsonb, text[])
    RETURNS jsonb
    LANGUAGE plpgsql
AS $function$
DECLARE
retval ALIAS FOR $1;
    dst_path ALIAS FOR $2;
    dst_path_segment text[] = ARRAY[]::text[];
    dst_path_array_length integer;
    i integer = 1;
BEGIN
    dst_path_array_length = array_length(dst_path, 1);
    WHILE i <=(dst_path_array_length - 1)
    LOOP
        dst_path_segment = dst_path_segment || ARRAY[dst_path[i]];
        IF retval #> dst_path_segment IS NULL OR retval #> dst_path_segment = 'null'::jsonb THEN
            retval = jsonb_set(retval, dst_path_segment, '{}'::jsonb, TRUE);
        END IF;
        i = i + 1;
    END LOOP;

    RETURN retval;
END;
$function$;


CREATE OR REPLACE FUNCTION enrolment.mt_jsonb_increment(jsonb, text[], numeric)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $function$
DECLARE
retval ALIAS FOR $1;
    location ALIAS FOR $2;
    increment_value ALIAS FOR $3;
    tmp_value jsonb;
BEGIN
    tmp_value = retval #> location;
    IF tmp_value IS NULL THEN
        tmp_value = to_jsonb(0);
END IF;

RETURN jsonb_set(retval, location, to_jsonb(tmp_value::numeric + increment_value), TRUE);
END;
$function$;


CREATE OR REPLACE FUNCTION enrolment.mt_jsonb_insert(jsonb, text[], jsonb, integer, boolean, jsonb default null::jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $function$
DECLARE
    retval ALIAS FOR $1;
    location ALIAS FOR $2;
    val ALIAS FOR $3;
    elm_index ALIAS FOR $4;
    if_not_exists ALIAS FOR $5;
    patch_expression ALIAS FOR $6;
    tmp_value jsonb;
BEGIN
    tmp_value = retval #> location;
    IF tmp_value IS NOT NULL AND jsonb_typeof(tmp_value) = 'array' THEN
        IF elm_index IS NULL THEN
            elm_index = jsonb_array_length(tmp_value) + 1;
        END IF;
        CASE
            WHEN NOT if_not_exists THEN
                retval = jsonb_insert(retval, location || elm_index::text, val);
            WHEN patch_expression IS NULL AND jsonb_typeof(val) = 'object' AND NOT tmp_value @> jsonb_build_array(val) THEN
                retval = jsonb_insert(retval, location || elm_index::text, val);
            WHEN patch_expression IS NULL AND jsonb_typeof(val) <> 'object' AND NOT tmp_value @> val THEN
                retval = jsonb_insert(retval, location || elm_index::text, val);
            WHEN patch_expression IS NOT NULL AND jsonb_typeof(patch_expression) = 'array' AND jsonb_array_length(patch_expression) = 0 THEN
                retval = jsonb_insert(retval, location || elm_index::text, val);
            ELSE NULL;
        END CASE;
    END IF;
    RETURN retval;
END;
$function$;


CREATE OR REPLACE FUNCTION enrolment.mt_jsonb_move(jsonb, text[], text)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $function$
DECLARE
    retval ALIAS FOR $1;
    src_path ALIAS FOR $2;
    dst_name ALIAS FOR $3;
    dst_path text[];
    tmp_value jsonb;
BEGIN
    tmp_value = retval #> src_path;
    retval = retval #- src_path;
    dst_path = src_path;
    dst_path[array_length(dst_path, 1)] = dst_name;
    retval = enrolment.mt_jsonb_fix_null_parent(retval, dst_path);
    RETURN jsonb_set(retval, dst_path, tmp_value, TRUE);
END;
$function$;


CREATE OR REPLACE FUNCTION enrolment.mt_jsonb_path_to_array(text, character)
    RETURNS text[]
    LANGUAGE plpgsql
AS $function$
DECLARE
    location ALIAS FOR $1;
    regex_pattern ALIAS FOR $2;
BEGIN
RETURN regexp_split_to_array(location, regex_pattern)::text[];
END;
$function$;


CREATE OR REPLACE FUNCTION enrolment.mt_jsonb_remove(jsonb, text[], jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $function$
DECLARE
    retval ALIAS FOR $1;
    location ALIAS FOR $2;
    val ALIAS FOR $3;
    tmp_value jsonb;
    tmp_remove jsonb;
    patch_remove jsonb;
BEGIN
    tmp_value = retval #> location;
    IF tmp_value IS NOT NULL AND jsonb_typeof(tmp_value) = 'array' THEN
        IF jsonb_typeof(val) = 'array' THEN
            tmp_remove = val;
        ELSE
            tmp_remove = jsonb_build_array(val);
        END IF;

        FOR patch_remove IN SELECT * FROM jsonb_array_elements(tmp_remove)
        LOOP
            tmp_value =(SELECT jsonb_agg(elem)
            FROM jsonb_array_elements(tmp_value) AS elem
            WHERE elem <> patch_remove);
        END LOOP;

        IF tmp_value IS NULL THEN
            tmp_value = '[]'::jsonb;
        END IF;
    END IF;
    RETURN jsonb_set(retval, location, tmp_value, FALSE);
END;
$function$;


CREATE OR REPLACE FUNCTION enrolment.mt_jsonb_remove_key(jsonb, text[], text)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $function$
DECLARE
    retval ALIAS FOR $1;
    location ALIAS FOR $2;
    _key ALIAS FOR $3;
    tmp_value jsonb;
    tmp_remove jsonb;
    patch_remove jsonb;
BEGIN
    tmp_value = retval #> location;
    IF tmp_value IS NOT NULL AND jsonb_typeof(tmp_value) = 'object' THEN
        RETURN jsonb_set(retval, location, tmp_value - _key, FALSE);
    END IF;
    RETURN retval;
END;
$function$;


CREATE OR REPLACE FUNCTION enrolment.mt_jsonb_patch(jsonb, jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $function$
DECLARE
    retval ALIAS FOR $1;
    patchset ALIAS FOR $2;
    patch jsonb;
    patch_path text[];
    patch_expression jsonb;
    value jsonb;
BEGIN
    FOR patch IN SELECT * from jsonb_array_elements(patchset)
    LOOP
        patch_path = enrolment.mt_jsonb_path_to_array((patch->>'path')::text, '\.');

        patch_expression = null;
        IF (patch->>'type') IN ('remove', 'append_if_not_exists', 'insert_if_not_exists') AND (patch->>'expression') IS NOT NULL THEN
            patch_expression = jsonb_path_query_array(retval #> patch_path, (patch->>'expression')::jsonpath);
        END IF;

        CASE patch->>'type'
            WHEN 'set' THEN
                retval = jsonb_set(retval, patch_path, (patch->'value')::jsonb, TRUE);
            WHEN 'delete' THEN
                retval = retval#-patch_path;
            WHEN 'append' THEN
                retval = enrolment.mt_jsonb_append(retval, patch_path, (patch->'value')::jsonb, FALSE);
            WHEN 'append_if_not_exists' THEN
                retval = enrolment.mt_jsonb_append(retval, patch_path, (patch->'value')::jsonb, TRUE, patch_expression);
            WHEN 'append_key_value' THEN
                retval = enrolment.mt_jsonb_append_key_value(retval, patch_path, (patch->'key_value')::jsonb, FALSE);
            WHEN 'append_key_value_if_not_exists' THEN
                retval = enrolment.mt_jsonb_append_key_value(retval, patch_path, (patch->'key_value')::jsonb, TRUE);
            WHEN 'insert' THEN
                retval = enrolment.mt_jsonb_insert(retval, patch_path, (patch->'value')::jsonb, (patch->>'index')::integer, FALSE);
            WHEN 'insert_if_not_exists' THEN
                retval = enrolment.mt_jsonb_insert(retval, patch_path, (patch->'value')::jsonb, (patch->>'index')::integer, TRUE, patch_expression);
            WHEN 'remove' THEN
                retval = enrolment.mt_jsonb_remove(retval, patch_path, COALESCE(patch_expression, (patch->'value')::jsonb));
            WHEN 'remove_key' THEN
                retval = enrolment.mt_jsonb_remove_key(retval, patch_path, (patch->>'key'));
            WHEN 'duplicate' THEN
                retval = enrolment.mt_jsonb_duplicate(retval, patch_path, (patch->'targets')::jsonb);
            WHEN 'rename' THEN
                retval = enrolment.mt_jsonb_move(retval, patch_path, (patch->>'to')::text);
            WHEN 'increment' THEN
                retval = enrolment.mt_jsonb_increment(retval, patch_path, (patch->>'increment')::numeric);
            WHEN 'increment_float' THEN
                retval = enrolment.mt_jsonb_increment(retval, patch_path, (patch->>'increment')::numeric);
            ELSE NULL;
        END CASE;
    END LOOP;
    RETURN retval;
END;
$function$;


CREATE
OR REPLACE FUNCTION enrolment.mt_safe_unaccent(use_unaccent BOOLEAN, word TEXT)
        RETURNS TEXT
        LANGUAGE plpgsql
        IMMUTABLE STRICT
AS $function$
BEGIN
IF use_unaccent THEN
    RETURN public.unaccent(word);
ELSE
    RETURN word;
END IF;
END;
$function$;


CREATE TABLE IF NOT EXISTS enrolment.tenant_fences (
    tenant_id    text                        NOT NULL,
    moved_to     text                        NOT NULL,
    fenced_at    timestamp with time zone    NOT NULL,
CONSTRAINT pkey_tenant_fences_tenant_id PRIMARY KEY (tenant_id)
);
CREATE TABLE IF NOT EXISTS enrolment.tenant_moves (
    tenant_id     text                        NOT NULL,
    epoch         integer                     NOT NULL,
    from_shard    text                        NOT NULL,
    copy_tx       xid8                        NOT NULL,
    moved_at      timestamp with time zone    NOT NULL,
    events        bigint                      NOT NULL,
CONSTRAINT pkey_tenant_moves_tenant_id_epoch PRIMARY KEY (tenant_id, epoch)
);
CREATE TABLE IF NOT EXISTS enrolment.tenant_move_positions (
    tenant_id    text       NOT NULL,
    epoch        integer    NOT NULL,
    old_tx       xid8       NOT NULL,
    old_seq      bigint     NOT NULL,
    new_seq      bigint     NOT NULL,
CONSTRAINT pkey_tenant_move_positions_tenant_id_epoch_old_tx_old_seq PRIMARY KEY (tenant_id, epoch, old_tx, old_seq)
);
CREATE OR REPLACE FUNCTION enrolment.tenant_write_gate(tenant text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF NOT pg_try_advisory_xact_lock_shared(1297045061, hashtext(tenant)) THEN
    RAISE EXCEPTION 'tenant % is being moved to another shard; retry in a second', tenant USING ERRCODE = 'EN503';
  END IF;
  IF EXISTS (SELECT 1 FROM enrolment.tenant_fences f WHERE f.tenant_id = tenant) THEN
    RAISE EXCEPTION 'tenant % has moved to another shard; retry in a second', tenant USING ERRCODE = 'EN503';
  END IF;
END;
$function$;
CREATE TABLE IF NOT EXISTS enrolment.enrolment_locks (
    tenant_id    text    NOT NULL,
    kind         text    NOT NULL,
    key          text    NOT NULL,
CONSTRAINT pkey_enrolment_locks_tenant_id_kind_key PRIMARY KEY (tenant_id, kind, key)
);
CREATE TABLE IF NOT EXISTS enrolment.webhook_deliveries (
    id                 uuid           NOT NULL,
    seq                BIGSERIAL      NOT NULL,
    subscription_id    uuid           NOT NULL,
    tenant_id          text           NOT NULL,
    enrolment_id       uuid           NOT NULL,
    stream_version     bigint         NOT NULL,
    event_type         text           NOT NULL,
    message_id         uuid           NOT NULL,
    message_type       text           NOT NULL,
    body               text           NOT NULL,
    created_at         timestamptz    NOT NULL,
    status             text           NOT NULL DEFAULT 'pending',
    attempts           integer        NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz    NULL,
    failing_since      timestamptz    NULL,
    lease_until        timestamptz    NULL,
    delivered_at       timestamptz    NULL,
    attempt_log        jsonb          NOT NULL DEFAULT '[]'::jsonb,
    trace_parent       text           NULL,
CONSTRAINT pkey_webhook_deliveries_id PRIMARY KEY (id)
);

CREATE INDEX ix_webhook_deliveries_due ON enrolment.webhook_deliveries USING btree (next_attempt_at) WHERE (status = 'pending');

CREATE INDEX ix_webhook_deliveries_order ON enrolment.webhook_deliveries USING btree (subscription_id, enrolment_id, stream_version) WHERE (status = 'pending');

CREATE INDEX ix_webhook_deliveries_list ON enrolment.webhook_deliveries USING btree (subscription_id, seq);
CREATE TABLE IF NOT EXISTS enrolment.mt_doc_assignment (
    tenant_id           varchar                     NOT NULL DEFAULT '*DEFAULT*',
    id                  uuid                        NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_dotnet_type      varchar                     NULL,
    mt_version          bigint                      NOT NULL DEFAULT 0,
    audience_id         varchar                     NULL,
CONSTRAINT pkey_mt_doc_assignment_tenant_id_id PRIMARY KEY (tenant_id, id)
) PARTITION BY LIST (tenant_id);


CREATE INDEX mt_doc_assignment_idx_audience_id ON enrolment.mt_doc_assignment USING btree (audience_id);
DROP POLICY IF EXISTS marten_tenant_isolation ON enrolment.mt_doc_assignment;
ALTER TABLE enrolment.mt_doc_assignment NO FORCE ROW LEVEL SECURITY;
ALTER TABLE enrolment.mt_doc_assignment DISABLE ROW LEVEL SECURITY;

CREATE TABLE IF NOT EXISTS enrolment.mt_doc_audiencemember (
    tenant_id           varchar                     NOT NULL DEFAULT '*DEFAULT*',
    id                  varchar                     NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
    audience_id         varchar                     NULL,
CONSTRAINT pkey_mt_doc_audiencemember_tenant_id_id PRIMARY KEY (tenant_id, id)
) PARTITION BY LIST (tenant_id);


CREATE INDEX mt_doc_audiencemember_idx_audience_id ON enrolment.mt_doc_audiencemember USING btree (audience_id);

CREATE INDEX mt_doc_audiencemember_idx_user_id ON enrolment.mt_doc_audiencemember USING btree ((data ->> 'userId'));
DROP POLICY IF EXISTS marten_tenant_isolation ON enrolment.mt_doc_audiencemember;
ALTER TABLE enrolment.mt_doc_audiencemember NO FORCE ROW LEVEL SECURITY;
ALTER TABLE enrolment.mt_doc_audiencemember DISABLE ROW LEVEL SECURITY;

CREATE TABLE IF NOT EXISTS enrolment.mt_doc_auditcheckpoint (
    tenant_id           varchar                     NOT NULL DEFAULT '*DEFAULT*',
    id                  bigint                      NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
CONSTRAINT pkey_mt_doc_auditcheckpoint_tenant_id_id PRIMARY KEY (tenant_id, id)
) PARTITION BY LIST (tenant_id);

DROP POLICY IF EXISTS marten_tenant_isolation ON enrolment.mt_doc_auditcheckpoint;
ALTER TABLE enrolment.mt_doc_auditcheckpoint NO FORCE ROW LEVEL SECURITY;
ALTER TABLE enrolment.mt_doc_auditcheckpoint DISABLE ROW LEVEL SECURITY;

CREATE TABLE IF NOT EXISTS enrolment.mt_doc_completionrecord (
    tenant_id             varchar                     NOT NULL DEFAULT '*DEFAULT*',
    id                    varchar                     NOT NULL,
    data                  jsonb                       NOT NULL,
    mt_last_modified      timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version            uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type        varchar                     NULL,
    resultcompleted_at    timestamptz                 NULL,
    resultuser_id         varchar                     NULL,
    resultcontent_id      varchar                     NULL,
CONSTRAINT pkey_mt_doc_completionrecord_tenant_id_id PRIMARY KEY (tenant_id, id)
) PARTITION BY LIST (tenant_id);


CREATE INDEX ix_completionrecord_completed_at ON enrolment.mt_doc_completionrecord USING btree (resultcompleted_at);

CREATE INDEX ix_completionrecord_user ON enrolment.mt_doc_completionrecord USING btree (resultuser_id);

CREATE INDEX ix_completionrecord_content ON enrolment.mt_doc_completionrecord USING btree (resultcontent_id);

CREATE INDEX ix_completionrecord_user_completed_at ON enrolment.mt_doc_completionrecord USING btree (tenant_id, (resultuser_id), (resultcompleted_at));

CREATE INDEX ix_completionrecord_content_completed_at ON enrolment.mt_doc_completionrecord USING btree (tenant_id, (resultcontent_id), (resultcompleted_at));
DROP POLICY IF EXISTS marten_tenant_isolation ON enrolment.mt_doc_completionrecord;
ALTER TABLE enrolment.mt_doc_completionrecord NO FORCE ROW LEVEL SECURITY;
ALTER TABLE enrolment.mt_doc_completionrecord DISABLE ROW LEVEL SECURITY;

CREATE TABLE IF NOT EXISTS enrolment.mt_doc_contentitem (
    tenant_id           varchar                     NOT NULL DEFAULT '*DEFAULT*',
    id                  varchar                     NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
CONSTRAINT pkey_mt_doc_contentitem_tenant_id_id PRIMARY KEY (tenant_id, id)
) PARTITION BY LIST (tenant_id);

DROP POLICY IF EXISTS marten_tenant_isolation ON enrolment.mt_doc_contentitem;
ALTER TABLE enrolment.mt_doc_contentitem NO FORCE ROW LEVEL SECURITY;
ALTER TABLE enrolment.mt_doc_contentitem DISABLE ROW LEVEL SECURITY;

CREATE TABLE IF NOT EXISTS enrolment.mt_doc_deadletterevent (
    id                  uuid                        NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
CONSTRAINT pkey_mt_doc_deadletterevent_id PRIMARY KEY (id)
);
CREATE TABLE IF NOT EXISTS enrolment.mt_doc_enrolmentstanding (
    tenant_id           varchar                     NOT NULL DEFAULT '*DEFAULT*',
    id                  uuid                        NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
CONSTRAINT pkey_mt_doc_enrolmentstanding_tenant_id_id PRIMARY KEY (tenant_id, id)
) PARTITION BY LIST (tenant_id);

DROP POLICY IF EXISTS marten_tenant_isolation ON enrolment.mt_doc_enrolmentstanding;
ALTER TABLE enrolment.mt_doc_enrolmentstanding NO FORCE ROW LEVEL SECURITY;
ALTER TABLE enrolment.mt_doc_enrolmentstanding DISABLE ROW LEVEL SECURITY;

CREATE TABLE IF NOT EXISTS enrolment.mt_doc_enrolment (
    tenant_id                 varchar                     NOT NULL DEFAULT '*DEFAULT*',
    id                        uuid                        NOT NULL,
    data                      jsonb                       NOT NULL,
    mt_last_modified          timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_dotnet_type            varchar                     NULL,
    mt_version                bigint                      NOT NULL DEFAULT 0,
    assignment_id             uuid                        NULL,
    status                    varchar                     NULL,
    user_id                   varchar                     NULL,
    updated_at                timestamptz                 NULL,
    next_transition_at_utc    timestamptz                 NULL,
CONSTRAINT pkey_mt_doc_enrolment_tenant_id_id PRIMARY KEY (tenant_id, id)
) PARTITION BY LIST (tenant_id);


CREATE INDEX mt_doc_enrolment_idx_next_transition_at_utc ON enrolment.mt_doc_enrolment USING btree (next_transition_at_utc);

CREATE INDEX ix_enrolment_assignment_status_id ON enrolment.mt_doc_enrolment USING btree (tenant_id, (assignment_id), (status), (id));

CREATE INDEX ix_enrolment_assignment_id_id ON enrolment.mt_doc_enrolment USING btree (tenant_id, (assignment_id), (id));

CREATE INDEX ix_enrolment_user_status_id ON enrolment.mt_doc_enrolment USING btree (tenant_id, (user_id), (status), (id));

CREATE INDEX ix_enrolment_assignment_updated_at ON enrolment.mt_doc_enrolment USING btree (tenant_id, (assignment_id), (updated_at));

CREATE INDEX ix_enrolment_user_updated_at ON enrolment.mt_doc_enrolment USING btree (tenant_id, (user_id), (updated_at));
DROP POLICY IF EXISTS marten_tenant_isolation ON enrolment.mt_doc_enrolment;
ALTER TABLE enrolment.mt_doc_enrolment NO FORCE ROW LEVEL SECURITY;
ALTER TABLE enrolment.mt_doc_enrolment DISABLE ROW LEVEL SECURITY;

CREATE TABLE IF NOT EXISTS enrolment.mt_doc_enrolmentsummary (
    tenant_id           varchar                     NOT NULL DEFAULT '*DEFAULT*',
    id                  varchar                     NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
CONSTRAINT pkey_mt_doc_enrolmentsummary_tenant_id_id PRIMARY KEY (tenant_id, id)
) PARTITION BY LIST (tenant_id);

DROP POLICY IF EXISTS marten_tenant_isolation ON enrolment.mt_doc_enrolmentsummary;
ALTER TABLE enrolment.mt_doc_enrolmentsummary NO FORCE ROW LEVEL SECURITY;
ALTER TABLE enrolment.mt_doc_enrolmentsummary DISABLE ROW LEVEL SECURITY;

CREATE TABLE IF NOT EXISTS enrolment.mt_doc_envelope (
    id                  uuid                        NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
CONSTRAINT pkey_mt_doc_envelope_id PRIMARY KEY (id)
);
CREATE TABLE IF NOT EXISTS enrolment.mt_doc_fanoutbatchdone (
    tenant_id           varchar                     NOT NULL DEFAULT '*DEFAULT*',
    id                  varchar                     NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
    operation_id        uuid                        NULL,
CONSTRAINT pkey_mt_doc_fanoutbatchdone_tenant_id_id PRIMARY KEY (tenant_id, id)
) PARTITION BY LIST (tenant_id);


CREATE INDEX mt_doc_fanoutbatchdone_idx_operation_id ON enrolment.mt_doc_fanoutbatchdone USING btree (operation_id);
DROP POLICY IF EXISTS marten_tenant_isolation ON enrolment.mt_doc_fanoutbatchdone;
ALTER TABLE enrolment.mt_doc_fanoutbatchdone NO FORCE ROW LEVEL SECURITY;
ALTER TABLE enrolment.mt_doc_fanoutbatchdone DISABLE ROW LEVEL SECURITY;

CREATE TABLE IF NOT EXISTS enrolment.mt_doc_fanoutoperation (
    tenant_id           varchar                     NOT NULL DEFAULT '*DEFAULT*',
    id                  uuid                        NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
CONSTRAINT pkey_mt_doc_fanoutoperation_tenant_id_id PRIMARY KEY (tenant_id, id)
) PARTITION BY LIST (tenant_id);

DROP POLICY IF EXISTS marten_tenant_isolation ON enrolment.mt_doc_fanoutoperation;
ALTER TABLE enrolment.mt_doc_fanoutoperation NO FORCE ROW LEVEL SECURITY;
ALTER TABLE enrolment.mt_doc_fanoutoperation DISABLE ROW LEVEL SECURITY;

CREATE TABLE IF NOT EXISTS enrolment.mt_doc_mimecastkey (
    id                  varchar                     NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
CONSTRAINT pkey_mt_doc_mimecastkey_id PRIMARY KEY (id)
);
CREATE TABLE IF NOT EXISTS enrolment.mt_doc_mimecastseenrequest (
    id                  varchar                     NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
    expires_at          timestamptz                 NULL,
CONSTRAINT pkey_mt_doc_mimecastseenrequest_id PRIMARY KEY (id)
);

CREATE INDEX mt_doc_mimecastseenrequest_idx_expires_at ON enrolment.mt_doc_mimecastseenrequest USING btree (expires_at);
CREATE TABLE IF NOT EXISTS enrolment.mt_doc_scimgroup (
    tenant_id           varchar                     NOT NULL DEFAULT '*DEFAULT*',
    id                  varchar                     NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
CONSTRAINT pkey_mt_doc_scimgroup_tenant_id_id PRIMARY KEY (tenant_id, id)
) PARTITION BY LIST (tenant_id);


CREATE INDEX mt_doc_scimgroup_idx_display_name_key ON enrolment.mt_doc_scimgroup USING btree ((data ->> 'displayNameKey'));
DROP POLICY IF EXISTS marten_tenant_isolation ON enrolment.mt_doc_scimgroup;
ALTER TABLE enrolment.mt_doc_scimgroup NO FORCE ROW LEVEL SECURITY;
ALTER TABLE enrolment.mt_doc_scimgroup DISABLE ROW LEVEL SECURITY;

CREATE TABLE IF NOT EXISTS enrolment.mt_doc_scimuser (
    tenant_id           varchar                     NOT NULL DEFAULT '*DEFAULT*',
    id                  varchar                     NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
CONSTRAINT pkey_mt_doc_scimuser_tenant_id_id PRIMARY KEY (tenant_id, id)
) PARTITION BY LIST (tenant_id);


CREATE INDEX mt_doc_scimuser_idx_user_name_key ON enrolment.mt_doc_scimuser USING btree ((data ->> 'userNameKey'));

CREATE INDEX mt_doc_scimuser_idx_external_id ON enrolment.mt_doc_scimuser USING btree ((data ->> 'externalId'));
DROP POLICY IF EXISTS marten_tenant_isolation ON enrolment.mt_doc_scimuser;
ALTER TABLE enrolment.mt_doc_scimuser NO FORCE ROW LEVEL SECURITY;
ALTER TABLE enrolment.mt_doc_scimuser DISABLE ROW LEVEL SECURITY;

CREATE TABLE IF NOT EXISTS enrolment.mt_doc_suspendedmembership (
    tenant_id           varchar                     NOT NULL DEFAULT '*DEFAULT*',
    id                  varchar                     NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
CONSTRAINT pkey_mt_doc_suspendedmembership_tenant_id_id PRIMARY KEY (tenant_id, id)
) PARTITION BY LIST (tenant_id);


CREATE INDEX mt_doc_suspendedmembership_idx_user_id ON enrolment.mt_doc_suspendedmembership USING btree ((data ->> 'userId'));

CREATE INDEX mt_doc_suspendedmembership_idx_audience_id ON enrolment.mt_doc_suspendedmembership USING btree ((data ->> 'audienceId'));
DROP POLICY IF EXISTS marten_tenant_isolation ON enrolment.mt_doc_suspendedmembership;
ALTER TABLE enrolment.mt_doc_suspendedmembership NO FORCE ROW LEVEL SECURITY;
ALTER TABLE enrolment.mt_doc_suspendedmembership DISABLE ROW LEVEL SECURITY;

CREATE TABLE IF NOT EXISTS enrolment.mt_doc_tenantaccount (
    id                  varchar                     NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
CONSTRAINT pkey_mt_doc_tenantaccount_id PRIMARY KEY (id)
);
CREATE TABLE IF NOT EXISTS enrolment.mt_doc_webhooksubscription (
    id                  uuid                        NOT NULL,
    data                jsonb                       NOT NULL,
    mt_last_modified    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mt_version          uuid                        NOT NULL DEFAULT (md5(random()::text || clock_timestamp()::text)::uuid),
    mt_dotnet_type      varchar                     NULL,
    tenant_id           varchar                     NULL,
CONSTRAINT pkey_mt_doc_webhooksubscription_id PRIMARY KEY (id)
);

CREATE INDEX mt_doc_webhooksubscription_idx_tenant_id ON enrolment.mt_doc_webhooksubscription USING btree (tenant_id);
CREATE TABLE IF NOT EXISTS enrolment.mt_hilo (
    entity_name    varchar    NOT NULL,
    hi_value       bigint     NULL DEFAULT 0,
CONSTRAINT pkey_mt_hilo_entity_name PRIMARY KEY (entity_name)
);
CREATE
OR REPLACE FUNCTION enrolment.mt_get_next_hi(entity varchar) RETURNS bigint AS
$$
DECLARE
current_value bigint;
    next_value
bigint;
BEGIN
select hi_value
into current_value
from enrolment.mt_hilo
where entity_name = entity;
IF
current_value is null THEN
        insert into enrolment.mt_hilo (entity_name, hi_value) values (entity, 0);
        next_value
:= 0;
ELSE
        next_value := current_value + 1;
update enrolment.mt_hilo
set hi_value = next_value
where entity_name = entity and hi_value = current_value;

IF
NOT FOUND THEN
            next_value := -1;
END IF;
END IF;

return next_value;
END

$$
LANGUAGE plpgsql;


CREATE TABLE IF NOT EXISTS enrolment.mt_streams (
    tenant_id            varchar        NOT NULL DEFAULT '*DEFAULT*',
    id                   uuid           NOT NULL,
    type                 varchar        NULL,
    version              bigint         NULL,
    timestamp            timestamptz    NOT NULL DEFAULT (now()),
    created              timestamptz    NOT NULL DEFAULT (now()),
    compacted_version    bigint         NOT NULL DEFAULT 0,
    is_archived          bool           NULL DEFAULT FALSE,
CONSTRAINT pkey_mt_streams_tenant_id_id PRIMARY KEY (tenant_id, id)
);
CREATE TABLE IF NOT EXISTS enrolment.mt_events (
    seq_id            bigint                      NOT NULL,
    id                uuid                        NOT NULL,
    stream_id         uuid                        NULL,
    version           bigint                      NOT NULL,
    data              jsonb                       NOT NULL,
    bdata             bytea                       NULL,
    type              varchar(500)                NOT NULL,
    timestamp         timestamp with time zone    NOT NULL DEFAULT '(now())',
    tenant_id         varchar                     NULL DEFAULT '*DEFAULT*',
    mt_dotnet_type    varchar                     NULL,
    correlation_id    varchar                     NULL,
    causation_id      varchar                     NULL,
    headers           jsonb                       NULL,
    user_name         varchar                     NULL,
    is_archived       bool                        NULL DEFAULT FALSE,
CONSTRAINT pkey_mt_events_seq_id PRIMARY KEY (seq_id)
);

DO $do$
BEGIN
ALTER TABLE enrolment.mt_events
ADD CONSTRAINT fkey_mt_events_stream_id_tenant_id FOREIGN KEY(tenant_id, stream_id)
REFERENCES enrolment.mt_streams(tenant_id, id);
EXCEPTION
    WHEN duplicate_object THEN NULL;
END
$do$;

CREATE UNIQUE INDEX pk_mt_events_stream_and_version ON enrolment.mt_events USING btree (tenant_id, stream_id, version);
CREATE SEQUENCE enrolment.mt_events_sequence;
ALTER SEQUENCE enrolment.mt_events_sequence OWNED BY enrolment.mt_events.seq_id;
CREATE TABLE IF NOT EXISTS enrolment.mt_event_progression (
    name                         varchar                     NOT NULL,
    last_seq_id                  bigint                      NULL,
    last_updated                 timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
    mode                         varchar                     NULL DEFAULT 'none',
    rebuild_threshold            integer                     NULL DEFAULT 0,
    assigned_node                integer                     NULL DEFAULT 0,
    heartbeat                    timestamp with time zone    NULL,
    agent_status                 varchar(20)                 NULL,
    pause_reason                 text                        NULL,
    running_on_node              integer                     NULL,
    warning_behind_threshold     bigint                      NULL,
    critical_behind_threshold    bigint                      NULL,
    failure_category             varchar(50)                 NULL,
    failure_event_sequence       bigint                      NULL,
    failure_event_type           varchar(500)                NULL,
    failure_event_tenant_id      varchar(500)                NULL,
CONSTRAINT pk_mt_event_progression PRIMARY KEY (name)
);
CREATE TABLE IF NOT EXISTS enrolment.mt_event_projection_floors (
    name            varchar                     NOT NULL,
    tenant_id       varchar                     NOT NULL,
    floor           bigint                      NOT NULL,
    last_updated    timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
CONSTRAINT pkey_mt_event_projection_floors_name_tenant_id PRIMARY KEY (name, tenant_id)
);
CREATE
OR REPLACE FUNCTION enrolment.mt_mark_event_progression(name varchar, last_encountered bigint) RETURNS VOID LANGUAGE plpgsql AS
$function$
BEGIN
INSERT INTO enrolment.mt_event_progression (name, last_seq_id, last_updated)
VALUES (name, last_encountered, transaction_timestamp())
ON CONFLICT ON CONSTRAINT pk_mt_event_progression
    DO
UPDATE SET last_seq_id = last_encountered, last_updated = transaction_timestamp();

END;

$function$;



CREATE OR REPLACE FUNCTION enrolment.mt_archive_stream(streamid uuid, tenantid varchar) RETURNS VOID LANGUAGE plpgsql AS
$function$
BEGIN
  update enrolment.mt_streams set is_archived = TRUE where id = streamid  and tenant_id = tenantid;
  update enrolment.mt_events set is_archived = TRUE where stream_id = streamid  and tenant_id = tenantid;
END;
$function$;


CREATE OR REPLACE FUNCTION enrolment.mt_quick_append_events(stream uuid, stream_type varchar, tenantid varchar, event_ids uuid[], event_types varchar[], dotnet_types varchar[], bodies jsonb[], bdatas bytea[], causation_ids varchar[], correlation_ids varchar[], headers jsonb[], user_names varchar[], timestamps timestamp with time zone[], expected_version bigint DEFAULT NULL::bigint) RETURNS bigint[] AS $$
DECLARE
	event_version bigint;
	stream_is_archived boolean;
	event_type varchar;
	event_id uuid;
	body jsonb;
	index int;
	seq bigint;
    actual_tenant varchar;
    is_new_stream boolean := false;
	return_value bigint[];
BEGIN
    if expected_version IS NOT NULL then
        -- COALESCE turns the NULL we get for a brand-new stream into 0, so a
        -- FetchForWriting against a non-existent stream (which sets
        -- ExpectedVersionOnServer = 0) and a StartStream(id, version: 0) both
        -- land on the new-stream branch instead of mis-firing the guard.
        select version, is_archived into event_version, stream_is_archived from enrolment.mt_streams where id = stream AND tenant_id = tenantid;
        if COALESCE(event_version, 0) != expected_version then
            RAISE EXCEPTION 'Stream version mismatch on ''%'': expected %, actual %', stream, expected_version, COALESCE(event_version, 0) USING ERRCODE = 'MT003';
        end if;
    else
        select version, is_archived into event_version, stream_is_archived from enrolment.mt_streams where id = stream AND tenant_id = tenantid;
    end if;

	if event_version IS NULL then
		event_version = 0;
		is_new_stream := true;
		-- #5456 follow-up: insert the FINAL version straight away rather than 0 plus a
		-- trailing UPDATE of the row we just wrote in this same transaction. That UPDATE
		-- is a second heap tuple + WAL record per stream creation for no observable gain
		-- -- nothing outside this transaction can see the intermediate 0. The trailing
		-- UPDATE below is skipped for this branch via is_new_stream.
		insert into enrolment.mt_streams (id, type, version, timestamp, tenant_id) values (stream, stream_type, COALESCE(array_length(event_ids, 1), 0), now(), tenantid);
    else
        if stream_is_archived then
            RAISE EXCEPTION 'Attempted to append event to archived stream with Id ''%''.', stream USING ERRCODE = 'MT001';
        end if;
        if tenantid IS NOT NULL then
            select tenant_id into actual_tenant from enrolment.mt_streams where id = stream AND tenant_id = tenantid;
            if actual_tenant != tenantid then
                RAISE EXCEPTION 'The tenantid does not match the existing stream';
            end if;
        end if;
	end if;

	index := 1;
	-- #5062: array_length('{}', 1) is NULL in PostgreSQL, not 0, so a call with an
	-- empty event array used to return ARRAY[NULL] -- a bigint[] whose only element
	-- is NULL, which Npgsql cannot read into long[] ('Cannot read a non-nullable
	-- collection of elements because the returned array contains nulls'). COALESCE
	-- makes the empty case mean what it says: zero events appended, so the final
	-- version is the stream's current version.
	return_value := ARRAY[event_version + COALESCE(array_length(event_ids, 1), 0)];

	foreach event_id in ARRAY event_ids
	loop
        seq := nextval('enrolment.mt_events_sequence');
		return_value := array_append(return_value, seq);

	    event_version := event_version + 1;
		event_type = event_types[index];
		body = bodies[index];

		-- #4515 / #4578 / Phase 2: bdatas[index] carries the binary payload
		-- for events opted in to binary serialization (NULL otherwise).
		-- bodies[index] is the {} JSON placeholder for those events so the
		-- existing data jsonb NOT NULL constraint stays intact.
		insert into enrolment.mt_events
			(seq_id, id, stream_id, version, data, bdata, type, tenant_id, timestamp, mt_dotnet_type, is_archived, causation_id, correlation_id, headers, user_name)
		values
			(seq, event_id, stream, event_version, body, bdatas[index], event_type, tenantid, timestamps[index], dotnet_types[index], FALSE, causation_ids[index], correlation_ids[index], headers[index], user_names[index]);

		index := index + 1;
	end loop;

	-- A brand-new stream already carries its final version from the insert above, so the
	-- UPDATE is only needed when we appended onto a stream that already existed.
	--
	-- #5539: and only when we actually appended something. With ZERO events this was a BLIND write-back
	-- of the version read at the top of the function, and under READ COMMITTED that is a lost update: the
	-- UPDATE waits on a concurrent appender's row lock, the winner commits, the WHERE clause is
	-- re-evaluated against the new row, and `set version = <the stale value>` lands -- leaving
	-- mt_streams.version BELOW the stream's own events. Every later append then computes a version that
	-- already exists and dies on pk_mt_events_stream_and_version, forever, until the row is repaired by
	-- hand. A non-empty call cannot do this: its first INSERT collides with the winner on that same
	-- primary key and rolls the whole thing back, which is why only the empty case was exposed.
	--
	-- Two independent guards, because either alone would have been enough and the cost of both is nil:
	--   * the append count -- appending nothing has nothing to write, so the correct number of statements
	--     is zero rather than one that happens to be harmless;
	--   * greatest(), so the write-back can never LOWER a stream's version whoever calls it. An append
	--     only ever moves a version forward, so this is a no-op on every correct path and a backstop on
	--     any future caller that reads the version and then writes it back.
	if not is_new_stream and COALESCE(array_length(event_ids, 1), 0) > 0 then
		update enrolment.mt_streams set version = greatest(version, event_version), timestamp = now() where id = stream AND tenant_id = tenantid;
	end if;

	return return_value;
END
$$ LANGUAGE plpgsql;

CREATE TABLE IF NOT EXISTS enrolment.mt_high_water_skips (
    ending_sequence      bigint                      NOT NULL,
    starting_sequence    bigint                      NOT NULL,
    timestamp            timestamp with time zone    NULL DEFAULT (transaction_timestamp()),
CONSTRAINT pkey_mt_high_water_skips_ending_sequence PRIMARY KEY (ending_sequence)
);
CREATE
OR REPLACE FUNCTION enrolment.mt_mark_progression_with_skip(shard_name varchar, ending_sequence bigint, starting_sequence bigint) RETURNS bigint AS
$$
DECLARE
    current_value bigint;
BEGIN
    select last_seq_id into current_value from enrolment.mt_event_progression where name = shard_name;

    IF current_value is null then
        -- Bootstrap the high-water row on first invocation. Previously this branch
        -- returned 0, which left HighWaterAgent.CheckNowAsync polling forever because
        -- statistics.CurrentMark never advanced. Issue #4425.
        INSERT INTO enrolment.mt_event_progression (name, last_seq_id, last_updated)
        VALUES (shard_name, ending_sequence, transaction_timestamp())
        ON CONFLICT ON CONSTRAINT pk_mt_event_progression
            DO UPDATE SET last_seq_id = ending_sequence, last_updated = transaction_timestamp();
        IF ending_sequence > starting_sequence THEN
            -- Idempotent: a rebuild/replay re-marks the same skip (ending_sequence is the
            -- PK). Re-recording an existing gap is a no-op. Conflict target is the PK
            -- constraint (the bare column name collides with the function parameter). #4530.
            insert into enrolment.mt_high_water_skips (ending_sequence, starting_sequence) values (ending_sequence, starting_sequence)
                on conflict on constraint pkey_mt_high_water_skips_ending_sequence do nothing;
        END IF;
        return ending_sequence;
    ELSIF current_value = starting_sequence THEN
        update enrolment.mt_event_progression SET last_seq_id = ending_sequence, last_updated = transaction_timestamp() where shard_name = name;
        insert into enrolment.mt_high_water_skips (ending_sequence, starting_sequence) values (ending_sequence, starting_sequence)
            on conflict on constraint pkey_mt_high_water_skips_ending_sequence do nothing;
        return ending_sequence;
    ELSE
        return current_value;
    END IF;
END
$$
LANGUAGE plpgsql;


CREATE TABLE IF NOT EXISTS enrolment.audit_chain (
    tenant_id          varchar    NOT NULL,
    stream_id          uuid       NOT NULL,
    version            bigint     NOT NULL,
    seq_id             bigint     NOT NULL,
    event_type         varchar    NOT NULL,
    event_timestamp    text       NOT NULL,
    data_sha256        text       NOT NULL,
    previous_hash      text       NOT NULL,
    hash               text       NOT NULL,
CONSTRAINT pkey_audit_chain_tenant_id_stream_id_version PRIMARY KEY (tenant_id, stream_id, version)
);

CREATE INDEX ix_audit_chain_tenant_seq_id ON enrolment.audit_chain USING btree (tenant_id, seq_id);
CREATE OR REPLACE FUNCTION enrolment.mt_audit_timestamp(value timestamp with time zone)
 RETURNS text
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$
  SELECT to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$function$;
CREATE OR REPLACE FUNCTION enrolment.mt_audit_hash(tenant_id character varying, stream_id uuid, version bigint, type character varying, "timestamp" timestamp with time zone, user_name character varying, correlation_id character varying, causation_id character varying, headers jsonb, data jsonb, previous_hash text)
 RETURNS text
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$
  SELECT encode(sha256(convert_to(
    octet_length(convert_to(coalesce('enrolment-audit-event-v1', ''), 'UTF8'))::text || ':' || coalesce('enrolment-audit-event-v1', '') || E'\n' || octet_length(convert_to(coalesce(tenant_id, ''), 'UTF8'))::text || ':' || coalesce(tenant_id, '') || E'\n' || octet_length(convert_to(coalesce(stream_id::text, ''), 'UTF8'))::text || ':' || coalesce(stream_id::text, '') || E'\n' || octet_length(convert_to(coalesce(version::text, ''), 'UTF8'))::text || ':' || coalesce(version::text, '') || E'\n' ||
    octet_length(convert_to(coalesce(type, ''), 'UTF8'))::text || ':' || coalesce(type, '') || E'\n' || octet_length(convert_to(coalesce(enrolment.mt_audit_timestamp("timestamp"), ''), 'UTF8'))::text || ':' || coalesce(enrolment.mt_audit_timestamp("timestamp"), '') || E'\n' || octet_length(convert_to(coalesce(user_name, ''), 'UTF8'))::text || ':' || coalesce(user_name, '') || E'\n' ||
    octet_length(convert_to(coalesce(correlation_id, ''), 'UTF8'))::text || ':' || coalesce(correlation_id, '') || E'\n' || octet_length(convert_to(coalesce(causation_id, ''), 'UTF8'))::text || ':' || coalesce(causation_id, '') || E'\n' || octet_length(convert_to(coalesce(headers::text, ''), 'UTF8'))::text || ':' || coalesce(headers::text, '') || E'\n' || octet_length(convert_to(coalesce(data::text, ''), 'UTF8'))::text || ':' || coalesce(data::text, '') || E'\n' ||
    octet_length(convert_to(coalesce(previous_hash, ''), 'UTF8'))::text || ':' || coalesce(previous_hash, '') || E'\n', 'UTF8')), 'hex')
$function$;
CREATE OR REPLACE FUNCTION enrolment.mt_audit_backfill_stream(tenant character varying, stream uuid, up_to bigint)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
  e enrolment.mt_events;
  prev text := '0000000000000000000000000000000000000000000000000000000000000000';
  h text;
  expected bigint := 1;
  written integer := 0;
BEGIN
  FOR e IN SELECT * FROM enrolment.mt_events WHERE tenant_id = tenant AND stream_id = stream AND version <= up_to AND mt_events.type <> 'tombstone' ORDER BY version LOOP
    IF e.version <> expected THEN
      RAISE EXCEPTION 'audit chain: stream % of tenant % has no event at version % (next is %); it cannot be chained', stream, tenant, expected, e.version;
    END IF;
    SELECT c.hash INTO h FROM enrolment.audit_chain c WHERE c.tenant_id = tenant AND c.stream_id = stream AND c.version = e.version;
    IF h IS NULL THEN
      h := enrolment.mt_audit_hash(e.tenant_id, e.stream_id, e.version, e.type, e.timestamp, e.user_name, e.correlation_id, e.causation_id, e.headers, e.data, prev);
      INSERT INTO enrolment.audit_chain (tenant_id, stream_id, version, seq_id, event_type, event_timestamp, data_sha256, previous_hash, hash)
      VALUES (e.tenant_id, e.stream_id, e.version, e.seq_id, e.type, enrolment.mt_audit_timestamp(e.timestamp),
              encode(sha256(convert_to(e.data::text, 'UTF8')), 'hex'), prev, h);
      written := written + 1;
    END IF;
    prev := h;
    expected := expected + 1;
  END LOOP;
  RETURN written;
END;
$function$;
CREATE OR REPLACE FUNCTION enrolment.mt_audit_chain_events()
 RETURNS trigger
 LANGUAGE plpgsql
 SET jit TO 'off'
AS $function$
DECLARE
  e record;
  prev text;
  h text;
  last_tenant character varying;
  last_stream uuid;
  last_version bigint;
  tenants character varying[] := '{}';
  streams uuid[] := '{}';
  versions bigint[] := '{}';
  sequences bigint[] := '{}';
  types character varying[] := '{}';
  stamps text[] := '{}';
  data_hashes text[] := '{}';
  previous text[] := '{}';
  hashes text[] := '{}';
  drawn bigint;
  foreign_fillers bigint[] := '{}';
BEGIN
  FOR e IN SELECT n.tenant_id, n.stream_id, n.version, n.seq_id, n.type, n.timestamp, n.user_name, n.correlation_id, n.causation_id, n.headers, n.data,
                  CASE WHEN n.version > 1 AND n.type <> 'tombstone' THEN (SELECT c.hash FROM enrolment.audit_chain c
                                                WHERE c.tenant_id = n.tenant_id AND c.stream_id = n.stream_id AND c.version = n.version - 1) END AS stored_previous
           FROM new_events n
           ORDER BY n.tenant_id, n.stream_id, n.version LOOP
    IF NOT (e.type <> 'tombstone') THEN
      -- A gap filler for a number this database's sequence never drew: Marten's, for a write that failed in
      -- another shard and filled in after `tenants move` switched its tenant here. Kept, it would sit above
      -- the sequence (a checkpoint's high-water mark over events not yet written, and the key a later
      -- append draws); it fills nothing here, so it is removed below.
      IF drawn IS NULL THEN SELECT s.last_value INTO drawn FROM enrolment.mt_events_sequence s; END IF;
      IF e.seq_id > drawn THEN foreign_fillers := foreign_fillers || e.seq_id; END IF;
      CONTINUE;
    END IF;
    IF e.tenant_id = last_tenant AND e.stream_id = last_stream AND e.version = last_version + 1 THEN
      prev := h;
    ELSIF e.version = 1 THEN
      prev := '0000000000000000000000000000000000000000000000000000000000000000';
    ELSE
      prev := e.stored_previous;
      IF prev IS NULL THEN
        -- A stream written before the upgrade: chain its earlier events first.
        PERFORM enrolment.mt_audit_backfill_stream(e.tenant_id, e.stream_id, e.version - 1);
        SELECT c.hash INTO prev FROM enrolment.audit_chain c WHERE c.tenant_id = e.tenant_id AND c.stream_id = e.stream_id AND c.version = e.version - 1;
        IF prev IS NULL THEN
          RAISE EXCEPTION 'audit chain: event % of stream % (tenant %) has no stored predecessor; insert events of a stream in version order', e.version, e.stream_id, e.tenant_id;
        END IF;
      END IF;
    END IF;
    h := enrolment.mt_audit_hash(e.tenant_id, e.stream_id, e.version, e.type, e.timestamp, e.user_name, e.correlation_id, e.causation_id, e.headers, e.data, prev);
    tenants := tenants || e.tenant_id;
    streams := streams || e.stream_id;
    versions := versions || e.version;
    sequences := sequences || e.seq_id;
    types := types || e.type;
    stamps := stamps || enrolment.mt_audit_timestamp(e.timestamp);
    data_hashes := data_hashes || encode(sha256(convert_to(e.data::text, 'UTF8')), 'hex');
    previous := previous || prev;
    hashes := hashes || h;
    last_tenant := e.tenant_id;
    last_stream := e.stream_id;
    last_version := e.version;
  END LOOP;
  INSERT INTO enrolment.audit_chain (tenant_id, stream_id, version, seq_id, event_type, event_timestamp, data_sha256, previous_hash, hash)
    SELECT * FROM unnest(tenants, streams, versions, sequences, types, stamps, data_hashes, previous, hashes);
  IF cardinality(foreign_fillers) > 0 THEN
    DELETE FROM enrolment.mt_events WHERE seq_id = ANY(foreign_fillers);
  END IF;
  RETURN NULL;
END;
$function$;
DROP TRIGGER IF EXISTS mt_audit_chain_v5 ON enrolment.mt_events;
DROP TRIGGER IF EXISTS mt_audit_chain ON enrolment.mt_events;
DROP TRIGGER IF EXISTS mt_audit_chain_v1 ON enrolment.mt_events;
DROP TRIGGER IF EXISTS mt_audit_chain_v2 ON enrolment.mt_events;
DROP TRIGGER IF EXISTS mt_audit_chain_v3 ON enrolment.mt_events;
DROP TRIGGER IF EXISTS mt_audit_chain_v4 ON enrolment.mt_events;
DROP FUNCTION IF EXISTS enrolment.mt_audit_chain_event();
DROP FUNCTION IF EXISTS enrolment.mt_audit_event_hash(character varying, uuid, bigint, character varying, timestamp with time zone, jsonb, jsonb, text);
CREATE TRIGGER mt_audit_chain_v5 AFTER INSERT ON enrolment.mt_events REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION enrolment.mt_audit_chain_events();
CREATE TABLE IF NOT EXISTS enrolment.change_feed_positions (
    seq_id       bigint     NOT NULL,
    tenant_id    varchar    NOT NULL,
    tx_id        xid8       NOT NULL,
CONSTRAINT pkey_change_feed_positions_seq_id PRIMARY KEY (seq_id)
);

CREATE INDEX ix_change_feed_positions_order ON enrolment.change_feed_positions USING btree (tenant_id, tx_id, seq_id);
CREATE OR REPLACE FUNCTION enrolment.change_feed_track()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO enrolment.change_feed_positions (seq_id, tenant_id, tx_id)
      SELECT n.seq_id, n.tenant_id, pg_current_xact_id() FROM new_events n;
  ELSIF TG_OP = 'DELETE' THEN
    DELETE FROM enrolment.change_feed_positions p USING old_events o WHERE p.seq_id = o.seq_id;
  ELSE
    TRUNCATE enrolment.change_feed_positions;
  END IF;
  RETURN NULL;
END;
$function$;
DROP TRIGGER IF EXISTS change_feed_on_insert_v1 ON enrolment.mt_events;
DROP TRIGGER IF EXISTS change_feed_on_delete_v1 ON enrolment.mt_events;
DROP TRIGGER IF EXISTS change_feed_on_truncate_v1 ON enrolment.mt_events;
CREATE TRIGGER change_feed_on_insert_v1 AFTER INSERT ON enrolment.mt_events REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION enrolment.change_feed_track();
CREATE TRIGGER change_feed_on_delete_v1 AFTER DELETE ON enrolment.mt_events REFERENCING OLD TABLE AS old_events FOR EACH STATEMENT EXECUTE FUNCTION enrolment.change_feed_track();
CREATE TRIGGER change_feed_on_truncate_v1 AFTER TRUNCATE ON enrolment.mt_events FOR EACH STATEMENT EXECUTE FUNCTION enrolment.change_feed_track();
INSERT INTO enrolment.change_feed_positions (seq_id, tenant_id, tx_id) SELECT seq_id, tenant_id, '1'::xid8 FROM enrolment.mt_events ON CONFLICT (seq_id) DO NOTHING;
CREATE TABLE IF NOT EXISTS enrolment.mt_tenant_partitions (
    partition_value     varchar    NOT NULL,
    partition_suffix    varchar    NULL,
CONSTRAINT pkey_mt_tenant_partitions_partition_value PRIMARY KEY (partition_value)
);
