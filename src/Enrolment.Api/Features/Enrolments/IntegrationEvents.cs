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
/// The public integration events of enrolment events: what bus consumers and webhook receivers
/// see. <see cref="EnrolmentWriter"/> writes them into the transaction of the change that caused them
/// (<see cref="IntegrationEventQueue"/>), so one is published if and only if its change committed. Internal domain
/// events never leave the service as they are.
/// </summary>
public static class IntegrationEvents
{
    /// <summary>
    /// Adds the integration events of <paramref name="events"/> (appended after <paramref name="startingVersion"/>) to
    /// <paramref name="messages"/>, and returns the state after them: the writer's one fold of a write.
    /// </summary>
    public static EnrolmentState Collect(List<object> messages, string tenantId, EnrolmentState? before, IReadOnlyList<IEnrolmentEvent> events, long startingVersion)
    {
        var state = before;
        var version = startingVersion;
        foreach (var e in events)
        {
            var previous = state;
            state = EnrolmentState.Fold(state, e);
            if (Integration(tenantId, previous, state, e, ++version) is { } message) messages.Add(message);
        }
        return state ?? throw new ArgumentException("No events to fold.", nameof(events));
    }

    /// <summary>The integration event for one domain event, or null when consumers need none.</summary>
    public static object? Integration(string tenantId, EnrolmentState? before, EnrolmentState after, IEnrolmentEvent e, long version)
    {
        var id = MessageId(tenantId, after.Id, version);
        var occurredAt = e.At.ToDateTimeOffset();
        if (e is ReminderRecorded r)
            return new EnrolmentReminderRecorded(id, 1, tenantId, after.Id, after.AssignmentId, after.UserId, EnrolmentRules.Lower(after.Status),
                r.NumberInPeriod, after.OnWatchlist, occurredAt, version);
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
