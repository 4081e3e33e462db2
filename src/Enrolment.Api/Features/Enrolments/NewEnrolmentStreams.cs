using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.MartenTables;
using Enrolment.Domain;
using Marten;
using NodaTime;
using Wolverine;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>
/// Starts many enrolment streams at once in the calling handler's transaction: streams, events and documents by COPY
/// (<see cref="StreamCopy"/>), and one integration event per stream event (<see cref="IntegrationEventQueue"/>, set-based as well), all
/// committed together when the handler's session is saved. An audience fan-out creates up to
/// <see cref="Operations.FanOut.BatchSize"/> enrolments per transaction, which otherwise cost one append and one
/// upsert, each its own statement, per stream.
/// </summary>
public static class NewEnrolmentStreams
{
    public static async Task Start(IDocumentSession session, IReadOnlyList<IReadOnlyList<IEnrolmentEvent>> streams, IMessageBus bus, Instant now, CancellationToken ct)
    {
        if (streams.Count == 0) return;
        await StreamCopy.StartStreams(session, streams, now, ct);
        var messages = new List<object>(streams.Sum(s => s.Count));
        foreach (var events in streams) EnrolmentChanges.Collect(messages, session.TenantId, null, events, 0);
        await IntegrationEventQueue.Of(bus).Write(session, bus, messages);
    }
}
