using System.Reflection;
using JasperFx.Events;
using JasperFx.Events.Projections;
using Marten;
using Marten.Internal.Storage;
using Marten.Storage;
using Npgsql;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>
/// The documents the registered inline single-stream projections write for new streams, folded in memory by those
/// projection objects themselves (their Evolve), and Marten's own bulk loader to COPY them. Used where streams are
/// started by COPY rather than through a session (seeding, large fan-outs), so the rows are what the ordinary
/// append would have written, whatever inline projections a feature adds.
/// </summary>
public static class InlineDocuments
{
    private static readonly MethodInfo LoadOfT = typeof(InlineDocuments).GetMethod(nameof(LoadTyped), BindingFlags.NonPublic | BindingFlags.Static)!;

    /// <summary>Every inline projection's document after these streams' events, one per stream and projection.</summary>
    public static List<object> Fold(IDocumentStore store, IEnumerable<StreamAction> streams)
    {
        var projections = Projections(store);
        var documents = new List<object>();
        foreach (var stream in streams)
        foreach (var (projection, evolve) in projections)
        {
            object? document = null;
            foreach (var e in stream.Events) document = evolve.Invoke(projection, [document, stream.Id, e]);
            if (document is not null) documents.Add(document);
        }
        return documents;
    }

    /// <summary>
    /// COPYs new documents on this connection (and so in its transaction) with Marten's bulk loader for their type:
    /// insert only, so a document that already exists fails the whole transaction rather than being overwritten.
    /// </summary>
    public static async Task CopyNew(IDocumentSession session, NpgsqlConnection connection, IEnumerable<object> documents, CancellationToken ct)
    {
        var tenant = new Tenant(session.TenantId, session.Database);
        var serializer = session.DocumentStore.Options.Serializer();
        foreach (var group in documents.GroupBy(d => d.GetType()))
            await (Task)LoadOfT.MakeGenericMethod(group.Key).Invoke(null, [session, tenant, serializer, connection, group, ct])!;
    }

    private static Task LoadTyped<T>(IDocumentSession session, Tenant tenant, ISerializer serializer, NpgsqlConnection connection, IEnumerable<object> documents, CancellationToken ct)
        where T : notnull
    {
        var provider = (MartenDocumentProvider<T>)session.Database.Providers.StorageFor<T>();
        return provider.BulkLoader.LoadAsync(tenant, serializer, connection, documents.Cast<T>(), ct);
    }

    /// <summary>
    /// This store's inline projections with an Evolve(doc, Guid, IEvent): the documents an append writes. Looked up on
    /// each call (a few projections, once per batch) rather than cached, so it always belongs to the store passed in.
    /// </summary>
    private static List<(object, MethodInfo)> Projections(IDocumentStore store) => ((DocumentStore)store).Options.Projections.All
        .Where(p => p.Lifecycle == ProjectionLifecycle.Inline)
        .Select(p => ((object)p, p.GetType().GetMethods().FirstOrDefault(m => m.Name == "Evolve" && m.GetParameters() is { Length: 3 } ps
            && ps[1].ParameterType == typeof(Guid) && ps[2].ParameterType == typeof(IEvent))))
        .Where(x => x.Item2 is not null)
        .Select(x => (x.Item1, x.Item2!))
        .ToList();
}
