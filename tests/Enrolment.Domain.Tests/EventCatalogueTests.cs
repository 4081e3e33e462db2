using Enrolment.Domain;

namespace Enrolment.Domain.Tests;

/// <summary>EnrolmentEvents' catalogue is the one list of enrolment events: the store, the projection and the webhooks derive from it.</summary>
public sealed class EventCatalogueTests
{
    [Fact]
    public void Every_enrolment_event_type_of_the_domain_is_in_the_catalogue_once_with_a_distinct_event_type()
    {
        var declared = typeof(IEnrolmentEvent).Assembly.GetTypes()
            .Where(t => t is { IsClass: true, IsAbstract: false } && typeof(IEnrolmentEvent).IsAssignableFrom(t))
            .OrderBy(t => t.Name).ToList();
        Assert.Equal(declared, EnrolmentEvents.Types.OrderBy(t => t.Name).ToList());
        Assert.Equal(EnrolmentEvents.Types.Count, EnrolmentEvents.EventTypes.Distinct().Count());
        Assert.All(EnrolmentEvents.EventTypes, name => Assert.Matches("^enrolment\\.[a-z]+$", name));
    }

    [Fact]
    public void Every_earlier_shape_is_catalogued_with_the_event_it_reads_as_and_is_no_event_a_writer_could_append()
    {
        var declared = typeof(IEarlierEventShape).Assembly.GetTypes()
            .Where(t => t is { IsClass: true, IsAbstract: false } && typeof(IEarlierEventShape).IsAssignableFrom(t))
            .OrderBy(t => t.Name).ToList();
        Assert.Equal(declared, EnrolmentEvents.EarlierShapes.Select(s => s.Shape).OrderBy(t => t.Name).ToList());
        Assert.All(EnrolmentEvents.EarlierShapes, s =>
        {
            Assert.False(typeof(IEnrolmentEvent).IsAssignableFrom(s.Shape), $"{s.Shape.Name} is an earlier shape, not an event");
            Assert.Contains(s.ReadAs, EnrolmentEvents.Types);
        });
    }

    [Fact]
    public void A_reminder_of_the_first_shape_reads_as_the_same_reminder_with_its_count_named_for_the_period()
    {
        var at = NodaTime.Instant.FromUtc(2026, 12, 7, 5, 33);
        var id = Guid.NewGuid();
        Assert.Equal(new ReminderRecorded(id, 2, at), new ReminderRecordedV1(id, 2, at).Upcast());
    }
}
