using Marten;
using Weasel.Core;
using Weasel.Core.Migrations;
using Weasel.Postgresql;
using Weasel.Postgresql.Functions;
using Weasel.Postgresql.Tables;

namespace Enrolment.Api.Infrastructure.MartenTables;

/// <summary>
/// The hash chain of Marten's event table, kept by PostgreSQL itself: a row trigger on <c>mt_events</c> (AFTER INSERT,
/// which COPY fires too) writes each event's hash to <c>audit_chain</c> in the inserting transaction, so every write
/// path (Marten's append, the fan-out COPY, set-based appends) keeps the chain without knowing about it. The hashes live
/// in a table of their own because Marten's migration drops any column of mt_events it does not know (checked:
/// db-patch writes <c>alter table mt_events drop column</c> for an added column), while it leaves other objects alone.
/// The canonical form is docs/audit.md's; <see cref="Features.Audit.AuditHash"/> computes the same in C# for `audit verify`.
/// Cost per event: one primary-key lookup of the previous hash, one SHA-256 and one narrow row with its index entry.
/// </summary>
public static class AuditChainSql
{
    public const string ChainTable = "audit_chain";
    /// <summary>Renamed (…_v2) whenever mt_audit_chain_event changes (see <see cref="EventTableTriggers"/>).</summary>
    public const string TriggerName = "mt_audit_chain_v1";
    public const string Zeros = "0000000000000000000000000000000000000000000000000000000000000000";

    private static DbObjectName Name(string schema, string name) => PostgresqlProvider.Instance.Parse(schema, name);

    /// <summary>Adds the table, the functions and the trigger to Marten's schema, so db-apply and auto-migration create them.</summary>
    public static void Configure(StoreOptions opts)
    {
        var schema = opts.DatabaseSchemaName;
        // A feature of its own, so it is created after the event tables (the trigger and the functions name
        // mt_events; extended schema objects are applied before the event store and fail on a new database).
        var objects = new List<ISchemaObject>();
        var chain = new Table(Name(schema, ChainTable));
        chain.AddColumn<string>("tenant_id").AsPrimaryKey();
        chain.AddColumn<Guid>("stream_id").AsPrimaryKey();
        chain.AddColumn<long>("version").AsPrimaryKey();
        chain.AddColumn<long>("seq_id").NotNull();
        // What the hash covered, recorded so `audit verify` can say which part of an event changed.
        chain.AddColumn("event_type", "varchar").NotNull();
        chain.AddColumn("event_timestamp", "text").NotNull();
        chain.AddColumn("data_sha256", "text").NotNull();
        chain.AddColumn("previous_hash", "text").NotNull();
        chain.AddColumn("hash", "text").NotNull();
        // Checkpoints find the tenants written to since the last one.
        chain.Indexes.Add(new IndexDefinition("ix_audit_chain_seq_id") { Columns = ["seq_id"] });
        objects.Add(chain);

        objects.Add(new Function(Name(schema, "mt_audit_timestamp"), $$"""
            CREATE OR REPLACE FUNCTION {{schema}}.mt_audit_timestamp(value timestamp with time zone)
             RETURNS text
             LANGUAGE sql
             IMMUTABLE
            AS $function$
              SELECT to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
            $function$;
            """));
        // The actor is read through to_jsonb, so metadata columns Marten adds later (user_name, correlation_id,
        // causation_id, headers) enter the hash without changing this function; absent or null is the empty string.
        // One expression over the fields in order (docs/audit.md: length, colon, value, newline each): a helper
        // function per field was not inlined by PostgreSQL (a parameter used thrice) and cost ~0.1 ms per event.
        objects.Add(new Function(Name(schema, "mt_audit_event_hash"), $$"""
            CREATE OR REPLACE FUNCTION {{schema}}.mt_audit_event_hash(tenant_id character varying, stream_id uuid, version bigint, type character varying, "timestamp" timestamp with time zone, metadata jsonb, data jsonb, previous_hash text)
             RETURNS text
             LANGUAGE sql
             IMMUTABLE
            AS $function$
              SELECT encode(sha256(convert_to(string_agg(octet_length(convert_to(f, 'UTF8'))::text || ':' || f || E'\n', '' ORDER BY n), 'UTF8')), 'hex')
              FROM unnest(ARRAY['enrolment-audit-event-v1', tenant_id::text, stream_id::text, version::text, type::text,
                     {{schema}}.mt_audit_timestamp("timestamp"), metadata ->> 'user_name', metadata ->> 'correlation_id',
                     metadata ->> 'causation_id', metadata ->> 'headers', data::text, previous_hash]) WITH ORDINALITY AS t(v, n),
                   coalesce(v, '') AS f
            $function$;
            """));
        // Chains events stored before the chain existed (an upgrade), in stream order, up to a version.
        objects.Add(new Function(Name(schema, "mt_audit_backfill_stream"), $$"""
            CREATE OR REPLACE FUNCTION {{schema}}.mt_audit_backfill_stream(tenant character varying, stream uuid, up_to bigint)
             RETURNS integer
             LANGUAGE plpgsql
            AS $function$
            DECLARE
              e {{schema}}.mt_events;
              prev text := '{{Zeros}}';
              h text;
              expected bigint := 1;
              written integer := 0;
            BEGIN
              FOR e IN SELECT * FROM {{schema}}.mt_events WHERE tenant_id = tenant AND stream_id = stream AND version <= up_to ORDER BY version LOOP
                IF e.version <> expected THEN
                  RAISE EXCEPTION 'audit chain: stream % of tenant % has no event at version % (next is %); it cannot be chained', stream, tenant, expected, e.version;
                END IF;
                SELECT c.hash INTO h FROM {{schema}}.{{ChainTable}} c WHERE c.tenant_id = tenant AND c.stream_id = stream AND c.version = e.version;
                IF h IS NULL THEN
                  h := {{schema}}.mt_audit_event_hash(e.tenant_id, e.stream_id, e.version, e.type, e.timestamp, to_jsonb(e), e.data, prev);
                  INSERT INTO {{schema}}.{{ChainTable}} (tenant_id, stream_id, version, seq_id, event_type, event_timestamp, data_sha256, previous_hash, hash)
                  VALUES (e.tenant_id, e.stream_id, e.version, e.seq_id, e.type, {{schema}}.mt_audit_timestamp(e.timestamp),
                          encode(sha256(convert_to(e.data::text, 'UTF8')), 'hex'), prev, h);
                  written := written + 1;
                END IF;
                prev := h;
                expected := expected + 1;
              END LOOP;
              RETURN written;
            END;
            $function$;
            """));
        objects.Add(new Function(Name(schema, "mt_audit_chain_event"), $$"""
            CREATE OR REPLACE FUNCTION {{schema}}.mt_audit_chain_event()
             RETURNS trigger
             LANGUAGE plpgsql
            AS $function$
            DECLARE
              prev text;
            BEGIN
              IF NEW.version = 1 THEN
                prev := '{{Zeros}}';
              ELSE
                SELECT c.hash INTO prev FROM {{schema}}.{{ChainTable}} c WHERE c.tenant_id = NEW.tenant_id AND c.stream_id = NEW.stream_id AND c.version = NEW.version - 1;
                IF prev IS NULL THEN
                  -- A stream written before the upgrade: chain its earlier events first.
                  PERFORM {{schema}}.mt_audit_backfill_stream(NEW.tenant_id, NEW.stream_id, NEW.version - 1);
                  SELECT c.hash INTO prev FROM {{schema}}.{{ChainTable}} c WHERE c.tenant_id = NEW.tenant_id AND c.stream_id = NEW.stream_id AND c.version = NEW.version - 1;
                  IF prev IS NULL THEN
                    RAISE EXCEPTION 'audit chain: event % of stream % (tenant %) has no stored predecessor; insert events of a stream in version order', NEW.version, NEW.stream_id, NEW.tenant_id;
                  END IF;
                END IF;
              END IF;
              INSERT INTO {{schema}}.{{ChainTable}} (tenant_id, stream_id, version, seq_id, event_type, event_timestamp, data_sha256, previous_hash, hash)
              VALUES (NEW.tenant_id, NEW.stream_id, NEW.version, NEW.seq_id, NEW.type, {{schema}}.mt_audit_timestamp(NEW.timestamp),
                      encode(sha256(convert_to(NEW.data::text, 'UTF8')), 'hex'), prev, {{schema}}.mt_audit_event_hash(NEW.tenant_id, NEW.stream_id, NEW.version, NEW.type, NEW.timestamp, to_jsonb(NEW), NEW.data, prev));
              RETURN NULL;
            END;
            $function$;
            """));
        objects.Add(new EventTableTriggers(Name(schema, "audit_chain_triggers"), Name(schema, "mt_events"),
            [(TriggerName, $"AFTER INSERT ON {schema}.mt_events FOR EACH ROW EXECUTE FUNCTION {schema}.mt_audit_chain_event()")],
            retired: ["mt_audit_chain"]));
        opts.Storage.Add(new AuditChainSchema(objects, opts.Advanced.Migrator));
    }
}

/// <summary>The audit chain's table, functions and trigger as one Weasel feature.</summary>
internal sealed class AuditChainSchema(IReadOnlyList<ISchemaObject> objects, Migrator migrator) : FeatureSchemaBase("AuditChain", migrator)
{
    protected override IEnumerable<ISchemaObject> schemaObjects() => objects;
}
