using System.Security.Cryptography;
using System.Text;
using Enrolment.Api.Infrastructure;
using Enrolment.Contracts;
using Enrolment.Domain;
using JasperFx.Events;
using Marten;
using Wolverine;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>
/// The one way enrolment events are written: appended to the stream and, in the same transaction
/// (<see cref="IntegrationEventQueue"/>), turned into the public integration events. So an integration event is published if and
/// only if its change committed. Internal domain events never leave the service as they are.
/// </summary>
public static class EnrolmentChanges
{
    public static async ValueTask Append(IDocumentSession session, IEventStream<EnrolmentState> stream, IReadOnlyList<IEnrolmentEvent> events, IMessageBus bus)
    {
        if (events.Count == 0) return;
        stream.AppendMany(events.Cast<object>().ToArray());
        await Publish(session, bus, stream.Aggregate, events, stream.StartingVersion ?? 0);
    }

    /// <summary>
    /// The integration events of <paramref name="events"/> appended after <paramref name="startingVersion"/> (by
    /// <see cref="Append"/> or set-based by <c>StreamAppend</c>), into the caller's transaction.
    /// </summary>
    public static ValueTask Publish(IDocumentSession session, IMessageBus bus, EnrolmentState? before, IReadOnlyList<IEnrolmentEvent> events, long startingVersion)
    {
        var messages = new List<object>(events.Count);
        Collect(messages, session.TenantId, before, events, startingVersion);
        return IntegrationEventQueue.Of(bus).Write(session, bus, messages);
    }

    /// <summary>Adds the integration events of <paramref name="events"/> (appended after <paramref name="startingVersion"/>) to <paramref name="messages"/>.</summary>
    public static void Collect(List<object> messages, string tenantId, EnrolmentState? before, IReadOnlyList<IEnrolmentEvent> events, long startingVersion)
    {
        var state = before;
        var version = startingVersion;
        foreach (var e in events)
        {
            var previous = state;
            state = EnrolmentState.Fold(state, e);
            if (Integration(tenantId, previous, state, e, ++version) is { } message) messages.Add(message);
        }
    }

    /// <summary>The integration event for one domain event, or null when consumers need none.</summary>
    public static object? Integration(string tenantId, EnrolmentState? before, EnrolmentState after, IEnrolmentEvent e, long version)
    {
        var id = MessageId(tenantId, after.Id, version);
        var occurredAt = e.At.ToDateTimeOffset();
        if (e is ReminderRecorded r)
            return new EnrolmentReminderRecorded(id, 1, tenantId, after.Id, after.AssignmentId, after.UserId, EnrolmentRules.Lower(after.Status),
                r.Number, after.OnWatchlist, occurredAt, version);
        var previous = before?.Status ?? EnrolmentStatus.Unassigned;
        return new EnrolmentStatusChanged(id, 1, tenantId, after.Id, after.AssignmentId, after.UserId, after.AudienceId, after.PrimaryContentId,
            EnrolmentRules.Lower(previous), EnrolmentRules.Lower(after.Status), EnrolmentEvents.EventType(e), EnrolmentEvents.CompletionId(e),
            occurredAt, version, after.AvailableDate.ToDateTimeOffset(), after.DueDate?.ToDateTimeOffset(), EnrolmentEvents.Reason(e));
    }

    /// <summary>Stable across redeliveries and retries: a name-based UUID of (tenant, enrolment, stream version).</summary>
    public static Guid MessageId(string tenantId, Guid enrolmentId, long version)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"enrolment-event\n{tenantId}\n{enrolmentId:N}\n{version}"));
        var bytes = hash.AsSpan(0, 16).ToArray();
        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x80); // version 8 (custom, name-based)
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80);
        return new Guid(bytes, bigEndian: true);
    }
}
