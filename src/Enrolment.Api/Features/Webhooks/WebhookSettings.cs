namespace Enrolment.Api.Features.Webhooks;

/// <summary>The "Webhooks" configuration section (appsettings.json; the README's configuration table explains each knob).</summary>
public sealed class WebhookSettings
{
    /// <summary>False: integration events are not routed to webhooks and nothing is delivered (the API still answers).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>True allows http:// and loopback, private and link-local targets (tests, a closed network). Never on a public service.</summary>
    public bool AllowPrivateTargets { get; set; }

    /// <summary>How long a receiver has to answer; no 2xx within it is a failed attempt.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The pause after the first failed attempt; each later pause doubles, up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan FirstRetryDelay { get; set; } = TimeSpan.FromSeconds(10);

    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromHours(1);

    /// <summary>A delivery failing for this long (no 2xx since its first failed attempt) disables its subscription.</summary>
    public TimeSpan DisableAfter { get; set; } = TimeSpan.FromHours(24);

    /// <summary>How often the sender looks for due deliveries when it found none last time.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Deliveries the sender claims per round.</summary>
    public int BatchSize { get; set; } = 100;

    /// <summary>Requests in flight at once, over all receivers.</summary>
    public int MaxConcurrentRequests { get; set; } = 16;

    /// <summary>How long a subscription list read by the recorder is reused; a change on this node is seen at once.</summary>
    public TimeSpan SubscriptionCacheTime { get; set; } = TimeSpan.FromSeconds(2);
}
