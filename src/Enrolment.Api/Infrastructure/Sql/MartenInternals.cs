using Marten;
using Marten.Events;

namespace Enrolment.Api.Infrastructure.Sql;

/// <summary>
/// Every cast from Marten's public interfaces to the concrete types behind them, in one place: what a Marten upgrade
/// can break. <c>RowParityTests</c> compares the rows written through these with Marten's own.
/// </summary>
public static class MartenInternals
{
    /// <summary>The name of Marten's event sequence (in the events schema): every seq_id of mt_events is drawn from it.</summary>
    public const string EventSequence = "mt_events_sequence";

    /// <summary>How Marten writes an enum into a duplicated column under EnumStorage.AsString: the member name (the JSON body is camelCase).</summary>
    public static string DuplicatedEnum<T>(T value) where T : struct, Enum => value.ToString();

    /// <summary>The event store's configuration: type names and stream aliases as Marten writes them in mt_events and mt_streams.</summary>
    public static EventGraph Events(IDocumentStore store) => (EventGraph)store.Options.Events;

    /// <summary>The store's full options (its projections, for the start-up guard).</summary>
    public static StoreOptions Options(IDocumentStore store) => (StoreOptions)store.Options;

    /// <summary>The headers the session stamps on every event it appends (the actor, the Compliance area's EventActors).</summary>
    public static IReadOnlyDictionary<string, object>? Headers(IDocumentSession session) =>
        ((Marten.Internal.Sessions.QuerySession)session).Headers;
}
