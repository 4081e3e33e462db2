using System.Data.Common;
using Marten;
using Weasel.Core;
using Weasel.Core.Migrations;
using Weasel.Postgresql;
using Weasel.Postgresql.Functions;
using Weasel.Postgresql.Tables;
using DbCommandBuilder = Weasel.Core.DbCommandBuilder;

namespace Enrolment.Api.Infrastructure.Sql;

/// <summary>
/// What the change feed needs below Marten's public API: for every row of <c>mt_events</c>, the id of the
/// transaction that wrote it (<c>change_feed_positions</c>), filled by statement-level triggers on <c>mt_events</c>,
/// so every write path (Marten's appends, the bulk COPY of new streams, anything added later) is covered
/// without touching it. Created by Marten's migration (start-up auto-migration, <c>db-apply</c>, <c>db-patch</c>)
/// as a feature of its own, after the event tables.
/// </summary>
/// <remarks>
/// Why a side table and not a column on <c>mt_events</c>: Marten owns that table's definition, and its migration
/// drops a column (and an index) it did not declare (checked with <c>db-assert</c> on Marten 9.58 / Weasel 9.49:
/// "alter table enrolment.mt_events drop column tx_id"). Weasel does not model triggers on a table, so Marten
/// leaves these alone. One row per event: its sequence number (the key, so a deleted event's row goes cheaply),
/// tenant and transaction id (<c>xid8</c>, 64 bits: never wraps, so a cursor never expires).
/// </remarks>
public sealed class ChangeFeedSchema(StoreOptions options) : FeatureSchemaBase("ChangeFeed", options.Advanced.Migrator)
{
    public const string TableName = "change_feed_positions";
    private const string FunctionName = "change_feed_track";

    private string Schema => options.Events.DatabaseSchemaName;

    public static void Register(StoreOptions options) => options.Storage.Add(new ChangeFeedSchema(options));

    protected override IEnumerable<ISchemaObject> schemaObjects()
    {
        var table = new Table($"{Schema}.{TableName}");
        table.AddColumn<long>("seq_id").AsPrimaryKey();
        table.AddColumn("tenant_id", "varchar").NotNull();
        table.AddColumn("tx_id", "xid8").NotNull();
        // The feed reads one tenant in (transaction, sequence) order from a position: one index range scan.
        table.Indexes.Add(new IndexDefinition($"ix_{TableName}_order") { Columns = ["tenant_id", "tx_id", "seq_id"] });
        yield return table;

        // Written as pg_get_functiondef renders it: Weasel compares line by line, and a difference would make it drop
        // the function CASCADE (and with it the triggers) on every migration.
        yield return Function.ForSql($"""
            CREATE OR REPLACE FUNCTION {Schema}.{FunctionName}()
             RETURNS trigger
             LANGUAGE plpgsql
            AS $function$
            BEGIN
              IF TG_OP = 'INSERT' THEN
                INSERT INTO {Schema}.{TableName} (seq_id, tenant_id, tx_id)
                  SELECT n.seq_id, n.tenant_id, pg_current_xact_id() FROM new_events n;
              ELSIF TG_OP = 'DELETE' THEN
                DELETE FROM {Schema}.{TableName} p USING old_events o WHERE p.seq_id = o.seq_id;
              ELSE
                TRUNCATE {Schema}.{TableName};
              END IF;
              RETURN NULL;
            END;
            $function$;
            """);

        // Statement-level with a transition table: one extra INSERT … SELECT per statement, also for COPY.
        var events = $"{Schema}.mt_events";
        var function = $"{Schema}.{FunctionName}";
        yield return new EventTableTriggers(PostgresqlProvider.Instance.Parse($"{Schema}.change_feed_triggers"), PostgresqlProvider.Instance.Parse(events),
            [
                ("change_feed_on_insert_v1", $"AFTER INSERT ON {events} REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION {function}()"),
                ("change_feed_on_delete_v1", $"AFTER DELETE ON {events} REFERENCING OLD TABLE AS old_events FOR EACH STATEMENT EXECUTE FUNCTION {function}()"),
                ("change_feed_on_truncate_v1", $"AFTER TRUNCATE ON {events} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"),
            ],
            // Events written before the feed existed come first, in sequence order (transaction id 1 is below any real one).
            $"INSERT INTO {Schema}.{TableName} (seq_id, tenant_id, tx_id) SELECT seq_id, tenant_id, '1'::xid8 FROM {events} ON CONFLICT (seq_id) DO NOTHING;");
    }
}

/// <summary>
/// Triggers on <c>mt_events</c> as one Weasel schema object, found by name, so a migration creates them when they are
/// missing and leaves them alone otherwise (Weasel's own trigger type compares its SQL with pg_get_triggerdef's,
/// never matches, and drops and re-creates the trigger at every start; it also has no REFERENCING clause).
/// Rename a trigger (…_v2) whenever it or its function changes: Weasel replaces a changed function with
/// DROP … CASCADE, which drops the trigger too, and only a name it does not find makes it create it again.
/// </summary>
/// <param name="retired">Earlier names of these triggers, dropped when they are created (an upgrade must not fire both).</param>
/// <param name="retiredFunctions">Functions (name and argument types) only the retired triggers used, dropped after them.</param>
internal sealed class EventTableTriggers(DbObjectName identifier, DbObjectName events, IReadOnlyList<(string Name, string Definition)> triggers,
    string? afterCreate = null, IReadOnlyList<string>? retired = null, IReadOnlyList<string>? retiredFunctions = null)
    : SchemaObjectBase(identifier)
{
    public override void WriteCreateStatement(Migrator migrator, TextWriter writer)
    {
        WriteDropStatement(migrator, writer);
        foreach (var (name, definition) in triggers) writer.WriteLine($"CREATE TRIGGER {name} {definition};");
        if (afterCreate is not null) writer.WriteLine(afterCreate);
    }

    public override void WriteDropStatement(Migrator rules, TextWriter writer)
    {
        foreach (var name in triggers.Select(t => t.Name).Concat(retired ?? [])) writer.WriteLine($"DROP TRIGGER IF EXISTS {name} ON {events};");
        foreach (var function in retiredFunctions ?? []) writer.WriteLine($"DROP FUNCTION IF EXISTS {function};");
    }

    public override void ConfigureQueryCommand(DbCommandBuilder builder)
    {
        var schema = builder.AddParameter(events.Schema).ParameterName;
        var table = builder.AddParameter(events.Name).ParameterName;
        var names = builder.AddParameter(triggers.Select(t => t.Name).ToArray()).ParameterName;
        builder.Append($"""
            SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = :{schema} AND c.relname = :{table} AND t.tgname = ANY(:{names});
            """);
    }

    public override async Task<ISchemaObjectDelta> CreateDeltaAsync(DbDataReader reader, CancellationToken ct = default)
    {
        var count = await reader.ReadAsync(ct) ? Convert.ToInt64(await reader.GetFieldValueAsync<object>(0, ct)) : 0;
        return new SchemaObjectDelta(this, count == triggers.Count ? SchemaPatchDifference.None : SchemaPatchDifference.Create);
    }
}
