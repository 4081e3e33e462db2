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
}
