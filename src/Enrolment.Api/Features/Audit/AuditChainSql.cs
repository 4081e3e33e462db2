using Enrolment.Api.Infrastructure.Sql;
using Marten;
using Weasel.Core;
using Weasel.Core.Migrations;
using Weasel.Postgresql;
using Weasel.Postgresql.Functions;
using Weasel.Postgresql.Tables;

namespace Enrolment.Api.Features.Audit;

/// <summary>
/// The hash chain of Marten's event table, kept by PostgreSQL itself: a statement-level trigger on <c>mt_events</c>
/// (AFTER INSERT with a transition table, which COPY fires too) writes the hashes of the statement's events to
/// <c>audit_chain</c> in the inserting transaction, so every write path (Marten's append, the fan-out COPY, set-based
/// appends) keeps the chain without knowing about it. The hashes live in a table of their own because Marten's
/// migration drops any column of mt_events it does not know (checked: db-patch writes <c>alter table mt_events drop
/// column</c> for an added column), while it leaves other objects alone.
/// The canonical form is docs/audit.md's; <see cref="AuditHash"/> computes the same in C# for `audit verify`.
/// Cost per event: one primary-key probe of the stored chain when its stream has earlier events, one SHA-256 and one
/// narrow row with its index entries, whatever the size of the history (100,000 new streams in one statement on the
/// 1,000,000 bench database: 2.9 s without the chain, 7.0 s with it; the row-level trigger it replaced cost 4× more).
/// </summary>
public static class AuditChainSql
{
    public const string ChainTable = "audit_chain";
    /// <summary>Renamed (…_v6) whenever mt_audit_chain_events changes (see <see cref="EventTableTriggers"/>).</summary>
    public const string TriggerName = "mt_audit_chain_v5";
    public const string HashFunction = "mt_audit_hash";

    /// <summary>
    /// The event type of Marten's gap fillers: when a unit of work fails, Marten writes a "tombstone" event for each
    /// sequence number it had drawn, to its own bookkeeping stream (version = sequence), so the async daemon need not
    /// wait for the gap. They carry no data and nothing projects them: they are outside the chain (not chained, not
    /// verified, not exported). An event of any other type is chained; a real event edited into a tombstone shows as
    /// removed, since its chain row remains.
    /// </summary>
    public static readonly string GapFillerType = JasperFx.Events.Tombstone.Name;

    /// <summary>The condition that keeps Marten's gap fillers out of the audit, for an mt_events row alias.</summary>
    public static string Chained(string alias) => $"{alias}.type <> '{GapFillerType}'";
    public const string Zeros = "0000000000000000000000000000000000000000000000000000000000000000";

    private static DbObjectName Name(string schema, string name) => PostgresqlProvider.Instance.Parse(schema, name);

    /// <summary>One field of the canonical form: its UTF-8 byte length, a colon, the value, a line feed.</summary>
    private static string Field(string value) =>
        $"octet_length(convert_to(coalesce({value}, ''), 'UTF8'))::text || ':' || coalesce({value}, '') || E'\\n'";

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
        // A checkpoint reads each tenant's rows added since its previous one, in sequence order, and finds the tenants
        // by a loose scan of the same index (AuditTables.RangeEntries, ChainedTenants).
        chain.Indexes.Add(new IndexDefinition("ix_audit_chain_tenant_seq_id") { Columns = ["tenant_id", "seq_id"] });
        objects.Add(chain);

        // STABLE, not IMMUTABLE: to_char and convert_to are stable, and PostgreSQL inlines a SQL function into the
        // calling query only when its body is no more volatile than declared. Inlined, the hash costs a few
        // microseconds per event; called as a function, ~15 (measured over 60,000 events).
        objects.Add(new Function(Name(schema, "mt_audit_timestamp"), $$"""
            CREATE OR REPLACE FUNCTION {{schema}}.mt_audit_timestamp(value timestamp with time zone)
             RETURNS text
             LANGUAGE sql
             STABLE PARALLEL SAFE
            AS $function$
              SELECT to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
            $function$;
            """));
        // docs/audit.md's canonical form, one expression over the fields in order (length, colon, value, newline
        // each; a null field is the empty string). The actor fields are Marten's metadata columns.
        objects.Add(new Function(Name(schema, HashFunction), $$"""
            CREATE OR REPLACE FUNCTION {{schema}}.{{HashFunction}}(tenant_id character varying, stream_id uuid, version bigint, type character varying, "timestamp" timestamp with time zone, user_name character varying, correlation_id character varying, causation_id character varying, headers jsonb, data jsonb, previous_hash text)
             RETURNS text
             LANGUAGE sql
             STABLE PARALLEL SAFE
            AS $function$
              SELECT encode(sha256(convert_to(
                {{Field("'enrolment-audit-event-v1'")}} || {{Field("tenant_id")}} || {{Field("stream_id::text")}} || {{Field("version::text")}} ||
                {{Field("type")}} || {{Field($"{schema}.mt_audit_timestamp(\"timestamp\")")}} || {{Field("user_name")}} ||
                {{Field("correlation_id")}} || {{Field("causation_id")}} || {{Field("headers::text")}} || {{Field("data::text")}} ||
                {{Field("previous_hash")}}, 'UTF8')), 'hex')
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
              FOR e IN SELECT * FROM {{schema}}.mt_events WHERE tenant_id = tenant AND stream_id = stream AND version <= up_to AND {{Chained("mt_events")}} ORDER BY version LOOP
                IF e.version <> expected THEN
                  RAISE EXCEPTION 'audit chain: stream % of tenant % has no event at version % (next is %); it cannot be chained', stream, tenant, expected, e.version;
                END IF;
                SELECT c.hash INTO h FROM {{schema}}.{{ChainTable}} c WHERE c.tenant_id = tenant AND c.stream_id = stream AND c.version = e.version;
                IF h IS NULL THEN
                  h := {{schema}}.{{HashFunction}}(e.tenant_id, e.stream_id, e.version, e.type, e.timestamp, e.user_name, e.correlation_id, e.causation_id, e.headers, e.data, prev);
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
        // Statement-level: once per INSERT or COPY, over its rows (the transition table new_events) in stream order,
        // each chained to the one before it in the statement or, for a stream's first row of the statement, to the
        // stored chain; then one INSERT of all chain rows. The stored predecessor is one primary-key probe per event
        // that has one (none for a new stream's events), never a join: joined, a statement of 20,000 events or more was
        // planned as a hash join reading the whole audit_chain (2.6 s per statement at 3.9 million rows; docs/audit.md).
        // JIT off: a statement of many rows is costed high enough to be JIT-compiled, which took longer (~0.7 s) than
        // the work itself.
        objects.Add(new Function(Name(schema, "mt_audit_chain_events"), $$"""
            CREATE OR REPLACE FUNCTION {{schema}}.mt_audit_chain_events()
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
                              CASE WHEN n.version > 1 AND {{Chained("n")}} THEN (SELECT c.hash FROM {{schema}}.{{ChainTable}} c
                                                            WHERE c.tenant_id = n.tenant_id AND c.stream_id = n.stream_id AND c.version = n.version - 1) END AS stored_previous
                       FROM new_events n
                       ORDER BY n.tenant_id, n.stream_id, n.version LOOP
                IF NOT ({{Chained("e")}}) THEN
                  -- A gap filler for a number this database's sequence never drew: Marten's, for a write that failed in
                  -- another shard and filled in after `tenants move` switched its tenant here. Kept, it would sit above
                  -- the sequence (a checkpoint's high-water mark over events not yet written, and the key a later
                  -- append draws); it fills nothing here, so it is removed below.
                  IF drawn IS NULL THEN SELECT s.last_value INTO drawn FROM {{schema}}.{{MartenInternals.EventSequence}} s; END IF;
                  IF e.seq_id > drawn THEN foreign_fillers := foreign_fillers || e.seq_id; END IF;
                  CONTINUE;
                END IF;
                IF e.tenant_id = last_tenant AND e.stream_id = last_stream AND e.version = last_version + 1 THEN
                  prev := h;
                ELSIF e.version = 1 THEN
                  prev := '{{Zeros}}';
                ELSE
                  prev := e.stored_previous;
                  IF prev IS NULL THEN
                    -- A stream written before the upgrade: chain its earlier events first.
                    PERFORM {{schema}}.mt_audit_backfill_stream(e.tenant_id, e.stream_id, e.version - 1);
                    SELECT c.hash INTO prev FROM {{schema}}.{{ChainTable}} c WHERE c.tenant_id = e.tenant_id AND c.stream_id = e.stream_id AND c.version = e.version - 1;
                    IF prev IS NULL THEN
                      RAISE EXCEPTION 'audit chain: event % of stream % (tenant %) has no stored predecessor; insert events of a stream in version order', e.version, e.stream_id, e.tenant_id;
                    END IF;
                  END IF;
                END IF;
                h := {{schema}}.{{HashFunction}}(e.tenant_id, e.stream_id, e.version, e.type, e.timestamp, e.user_name, e.correlation_id, e.causation_id, e.headers, e.data, prev);
                tenants := tenants || e.tenant_id;
                streams := streams || e.stream_id;
                versions := versions || e.version;
                sequences := sequences || e.seq_id;
                types := types || e.type;
                stamps := stamps || {{schema}}.mt_audit_timestamp(e.timestamp);
                data_hashes := data_hashes || encode(sha256(convert_to(e.data::text, 'UTF8')), 'hex');
                previous := previous || prev;
                hashes := hashes || h;
                last_tenant := e.tenant_id;
                last_stream := e.stream_id;
                last_version := e.version;
              END LOOP;
              INSERT INTO {{schema}}.{{ChainTable}} (tenant_id, stream_id, version, seq_id, event_type, event_timestamp, data_sha256, previous_hash, hash)
                SELECT * FROM unnest(tenants, streams, versions, sequences, types, stamps, data_hashes, previous, hashes);
              IF cardinality(foreign_fillers) > 0 THEN
                DELETE FROM {{schema}}.mt_events WHERE seq_id = ANY(foreign_fillers);
              END IF;
              RETURN NULL;
            END;
            $function$;
            """));
        objects.Add(new EventTableTriggers(Name(schema, "audit_chain_triggers"), Name(schema, "mt_events"),
            [(TriggerName, $"AFTER INSERT ON {schema}.mt_events REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION {schema}.mt_audit_chain_events()")],
            retired: ["mt_audit_chain", "mt_audit_chain_v1", "mt_audit_chain_v2", "mt_audit_chain_v3", "mt_audit_chain_v4"],
            // The row-level trigger's function and the hash function over a metadata jsonb that it called.
            retiredFunctions: [$"{schema}.mt_audit_chain_event()",
                $"{schema}.mt_audit_event_hash(character varying, uuid, bigint, character varying, timestamp with time zone, jsonb, jsonb, text)"]));
        opts.Storage.Add(new AuditChainSchema(objects, opts.Advanced.Migrator));
    }
}

/// <summary>The audit chain's table, functions and trigger as one Weasel feature.</summary>
internal sealed class AuditChainSchema(IReadOnlyList<ISchemaObject> objects, Migrator migrator) : FeatureSchemaBase("AuditChain", migrator)
{
    protected override IEnumerable<ISchemaObject> schemaObjects() => objects;
}
