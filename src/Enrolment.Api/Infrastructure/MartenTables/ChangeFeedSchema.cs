using System.Data.Common;
using Marten;
using Weasel.Core;
using Weasel.Core.Migrations;
using Weasel.Postgresql;
using Weasel.Postgresql.Functions;
using Weasel.Postgresql.Tables;
using DbCommandBuilder = Weasel.Core.DbCommandBuilder;

namespace Enrolment.Api.Infrastructure.MartenTables;

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

        yield return new ChangeFeedTriggers(PostgresqlProvider.Instance.Parse($"{Schema}.mt_events"), $"{Schema}.{TableName}", $"{Schema}.{FunctionName}");
    }
}

/// <summary>
/// The three statement-level triggers on <c>mt_events</c> (Weasel's own trigger type has no REFERENCING clause).
/// Statement-level with a transition table: one extra INSERT … SELECT per statement, also for COPY.
/// </summary>
internal sealed class ChangeFeedTriggers(DbObjectName events, string positions, string function)
    : SchemaObjectBase(PostgresqlProvider.Instance.Parse($"{events.Schema}.change_feed_triggers"))
{
    // Renamed (…_v2) whenever a trigger or the function changes: Weasel replaces a changed function with DROP … CASCADE,
    // which drops these too, and only a name it does not find makes it create them again.
    private static readonly string[] Names = ["change_feed_on_insert_v1", "change_feed_on_delete_v1", "change_feed_on_truncate_v1"];

    public override void WriteCreateStatement(Migrator migrator, TextWriter writer)
    {
        WriteDropStatement(migrator, writer);
        writer.WriteLine($"CREATE TRIGGER {Names[0]} AFTER INSERT ON {events} REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION {function}();");
        writer.WriteLine($"CREATE TRIGGER {Names[1]} AFTER DELETE ON {events} REFERENCING OLD TABLE AS old_events FOR EACH STATEMENT EXECUTE FUNCTION {function}();");
        writer.WriteLine($"CREATE TRIGGER {Names[2]} AFTER TRUNCATE ON {events} FOR EACH STATEMENT EXECUTE FUNCTION {function}();");
        // Events written before the feed existed come first, in sequence order (transaction id 1 is below any real one).
        writer.WriteLine($"INSERT INTO {positions} (seq_id, tenant_id, tx_id) SELECT seq_id, tenant_id, '1'::xid8 FROM {events} ON CONFLICT (seq_id) DO NOTHING;");
    }

    public override void WriteDropStatement(Migrator rules, TextWriter writer)
    {
        foreach (var name in Names) writer.WriteLine($"DROP TRIGGER IF EXISTS {name} ON {events};");
    }

    public override void ConfigureQueryCommand(DbCommandBuilder builder)
    {
        var schema = builder.AddParameter(events.Schema).ParameterName;
        var names = builder.AddParameter(Names).ParameterName;
        builder.Append($"""
            SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = :{schema} AND c.relname = 'mt_events' AND t.tgname = ANY(:{names});
            """);
    }

    public override async Task<ISchemaObjectDelta> CreateDeltaAsync(DbDataReader reader, CancellationToken ct = default)
    {
        var count = await reader.ReadAsync(ct) ? Convert.ToInt64(await reader.GetFieldValueAsync<object>(0, ct)) : 0;
        return new SchemaObjectDelta(this, count == Names.Length ? SchemaPatchDifference.None : SchemaPatchDifference.Create);
    }
}
