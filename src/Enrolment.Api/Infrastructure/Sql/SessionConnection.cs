using System.Diagnostics;
using Marten;
using Npgsql;

namespace Enrolment.Api.Infrastructure.Sql;

/// <summary>
/// The session's own connection, in its transaction: what every set-based write and the user locks run on, so they
/// commit or roll back with the rest of the handler's work (its outbox envelopes included) when Wolverine saves the session.
/// </summary>
public static class SessionConnection
{
    /// <summary>Opens the session's transaction (once; later calls return the same connection) and returns its connection.</summary>
    public static async Task<NpgsqlConnection> Open(IDocumentSession session, CancellationToken ct)
    {
        // Marten 9.58 with connection tracing on: BeginTransactionAsync swaps the session's traced connection lifetime for
        // the transaction's and never stops the swapped one's "marten.connection" span, which stays Activity.Current, so
        // every later span of the request (Npgsql's statements, the bus send) would hang from a span never exported.
        // TracingTests fails if that changes.
        var connectionSpan = Activity.Current is { Source.Name: "Marten" } current ? current : null;
        await session.BeginTransactionAsync(ct);
        if (connectionSpan is not null && session.Connection is not null) connectionSpan.Stop();
        return session.Connection ?? throw new InvalidOperationException("The Marten session has no connection after BeginTransactionAsync.");
    }
}
