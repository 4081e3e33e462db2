using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using Marten;
using Marten.Services.Json.Transformations;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>
/// How enrolment events are named in mt_events' <c>type</c> column, today's shapes and earlier ones: the one place that
/// knows. Marten names an event after its class (<c>EnrolmentCompleted</c> is <c>enrolment_completed</c>). An event
/// whose shape changed is stored under a new name, and its earlier shape keeps the old one and is upcast on read
/// (docs/architecture.md, "How an event changes shape"). The hash chain covers these names and the stored data as
/// they are, so nothing here ever rewrites a row.
/// </summary>
public static class StoredEnrolmentEvents
{
    /// <summary>Today's events whose stored name is not Marten's default, because an earlier shape holds that name.</summary>
    private static readonly (Type Event, string Name)[] Renamed =
    [
        (typeof(ReminderRecorded), "reminder_recorded_v2"),
    ];

    /// <summary>The stored name of each of <see cref="EnrolmentEvents.EarlierShapes"/>: the name its class had when it was today's.</summary>
    private static readonly Dictionary<Type, string> EarlierNames = new()
    {
        [typeof(ReminderRecordedV1)] = "reminder_recorded",
    };

    public static void Configure(StoreOptions opts)
    {
        opts.Events.AddEventTypes([.. EnrolmentEvents.Types]);
        foreach (var (type, name) in Renamed) opts.Events.MapEventType(type, name);
        foreach (var (shape, readAs) in EnrolmentEvents.EarlierShapes)
        {
            var name = EarlierNames.TryGetValue(shape, out var n) ? n
                : throw new InvalidOperationException($"{shape.Name} is an earlier shape of {readAs.Name} without a stored name in {nameof(StoredEnrolmentEvents)}.");
            // Marten reads a row stored under this name as the earlier shape, then hands out today's event: the fold,
            // the projections and every reader see only today's shapes.
            opts.Events.Upcast(readAs, name, new JsonTransformation(
                (serializer, reader, index) => Upcast(serializer.FromJson(shape, reader, index)),
                async (serializer, reader, index, ct) => Upcast(await serializer.FromJsonAsync(shape, reader, index, ct))));
        }
    }

    private static IEnrolmentEvent Upcast(object stored) => ((IEarlierEventShape)stored).Upcast();

    /// <summary>
    /// Every name enrolment events are stored under, today's and earlier shapes': what SQL that selects enrolment events
    /// from mt_events by type must match (a filter on today's names alone would skip every row of an earlier shape).
    /// </summary>
    public static IReadOnlyList<string> Names(IDocumentStore store) =>
        [.. EnrolmentEvents.Types.Select(t => MartenInternals.Events(store).EventMappingFor(t).EventTypeName), .. EarlierNames.Values];

    /// <summary>
    /// A reader of stored enrolment events by their stored name, for SQL that reads mt_events itself (the rebuild): each
    /// name's row deserialised with the store's serializer into today's event, an earlier shape upcast as Marten would.
    /// </summary>
    public static IReadOnlyDictionary<string, Func<Marten.ISerializer, System.Data.Common.DbDataReader, int, IEnrolmentEvent>> Readers(IDocumentStore store)
    {
        var readers = new Dictionary<string, Func<Marten.ISerializer, System.Data.Common.DbDataReader, int, IEnrolmentEvent>>();
        foreach (var type in EnrolmentEvents.Types)
            readers[MartenInternals.Events(store).EventMappingFor(type).EventTypeName] = (serializer, reader, index) => (IEnrolmentEvent)serializer.FromJson(type, reader, index);
        foreach (var (shape, _) in EnrolmentEvents.EarlierShapes)
            readers[EarlierNames[shape]] = (serializer, reader, index) => Upcast(serializer.FromJson(shape, reader, index));
        return readers;
    }
}
