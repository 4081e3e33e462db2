using Enrolment.Api.Infrastructure;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using Marten;
using Marten.Storage;
using Microsoft.Extensions.Options;
using NodaTime;

namespace Enrolment.Api.Features.Webhooks;

/// <summary>
/// Sends the pending deliveries of active subscriptions: leases due ones from the deliveries table (the oldest pending one per
/// subscription and enrolment, so a failing delivery holds back that enrolment's later ones), POSTs each signed body, and
/// records the attempt. A failure is tried again after a pause that doubles from Webhooks:FirstRetryDelay up to
/// Webhooks:MaxRetryDelay; a delivery without a 2xx for Webhooks:DisableAfter disables its subscription.
/// Its own schedule rather than Wolverine's retries: a retry there cannot hold back the enrolment's later messages, and the
/// table is what GET …/deliveries, redeliver and enable work on anyway.
/// </summary>
public sealed class WebhookSender(
    IDocumentStore store, WebhookSecrets secrets, WebhookSubscriptionCache cache, IHttpClientFactory clients,
    IOptions<WebhookSettings> options, IClock clock, ILogger<WebhookSender> logger) : BackgroundService
{
    public const string HttpClientName = "webhooks";
    public static readonly ActivitySource Source = new("Enrolment.Api.Webhooks");
    private readonly WebhookSettings settings = options.Value;
    private readonly SemaphoreSlim wake = new(0);
    private readonly HashSet<Guid> unreadable = [];

    protected override async Task ExecuteAsync(CancellationToken stopping)
    {
        var slots = new SemaphoreSlim(settings.MaxConcurrentRequests);
        var inFlight = new ConcurrentDictionary<Guid, Task>();
        var lease = Duration.FromTimeSpan(settings.Timeout) + Duration.FromSeconds(30);
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                // Shard by shard: a subscription, its deliveries and the leases on them are all in its tenant's shard.
                var more = false;
                foreach (var shard in await store.Shards())
                {
                    var deliveries = new WebhookDeliveries(Infrastructure.TenantPool.DataSourceOf(shard));
                    var active = await ActiveSubscriptions(shard, stopping);
                    var free = slots.CurrentCount;
                    var claimed = active.Count == 0 || free == 0
                        ? []
                        : await deliveries.Claim(active.Keys.ToArray(), Math.Min(free, settings.BatchSize), clock.GetCurrentInstant(), lease, stopping);
                    foreach (var delivery in claimed)
                    {
                        await slots.WaitAsync(stopping);
                        inFlight[delivery.Id] = Task.Run(async () =>
                        {
                            try { await Attempt(shard, deliveries, delivery, active[delivery.WebhookId], stopping); }
                            finally { slots.Release(); inFlight.TryRemove(delivery.Id, out _); wake.Release(); }
                        }, CancellationToken.None);
                    }
                    more |= claimed.Count > 0 && claimed.Count >= free;
                }
                // A full batch means more are due: look again at once. Otherwise wait for the poll interval or a finished attempt.
                if (!more) await wake.WaitAsync(settings.PollInterval, stopping);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                logger.LogError(e, "The webhook sender could not read the deliveries table; it tries again in {PollInterval}. Deliveries wait meanwhile, none is lost.", settings.PollInterval);
                try { await Task.Delay(settings.PollInterval, stopping); } catch (OperationCanceledException) { break; }
            }
        }
        await Task.WhenAll(inFlight.Values);
    }

    private async Task<Dictionary<Guid, (WebhookSubscription Subscription, byte[] Key)>> ActiveSubscriptions(IMartenDatabase shard, CancellationToken ct)
    {
        await using var session = store.QuerySession(Marten.Services.SessionOptions.ForDatabase(shard));
        var active = await session.Query<WebhookSubscription>().Where(s => s.Status == WebhookStatus.Active).ToListAsync(ct);
        var result = new Dictionary<Guid, (WebhookSubscription, byte[])>();
        foreach (var subscription in active)
        {
            if (secrets.Open(subscription.Id, subscription.SealedSecret) is { } key) result[subscription.Id] = (subscription, key);
            else if (unreadable.Add(subscription.Id))
                logger.LogError("Webhook {WebhookId} of tenant {TenantId} is not delivered: its secret does not decrypt with Mimecast:KeyEncryptionKey " +
                                "(was the key changed?). Restore the key, or delete the webhook and create it again.", subscription.Id, subscription.TenantId);
        }
        return result;
    }

    private async Task Attempt(IMartenDatabase shard, WebhookDeliveries deliveries, ClaimedDelivery delivery, (WebhookSubscription Subscription, byte[] Key) target, CancellationToken stopping)
    {
        var attempt = delivery.Attempts + 1;
        var body = Encoding.UTF8.GetBytes(delivery.Body);
        var at = clock.GetCurrentInstant();
        var watch = Stopwatch.StartNew();
        int? status = null;
        string? error = null;

        // The delivery continues the trace of the change that caused it (when tracing is on, its exporter sees the span;
        // either way the receiver gets a traceparent).
        using var activity = Source.StartActivity("webhook delivery", ActivityKind.Client, delivery.TraceParent)
                             ?? (delivery.TraceParent is { } parent ? new Activity("webhook delivery").SetParentId(parent).Start() : null);
        activity?.SetTag("webhook.id", delivery.WebhookId.ToString());
        activity?.SetTag("webhook.delivery_id", delivery.Id.ToString());
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, target.Subscription.Url) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
            request.Headers.Add("x-hmac-signature", WebhookSecrets.Sign(target.Key, body));
            request.Headers.Add("x-webhook-id", delivery.WebhookId.ToString());
            request.Headers.Add("x-delivery-id", delivery.Id.ToString());
            request.Headers.Add("x-delivery-attempt", attempt.ToString(CultureInfo.InvariantCulture));
            request.Headers.Add("x-event-type", delivery.EventType);
            request.Headers.Add("x-message-type", delivery.MessageType);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            timeout.CancelAfter(settings.Timeout);
            using var response = await clients.CreateClient(HttpClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            status = (int)response.StatusCode;
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Stopping: not the receiver's failure. Give the delivery back untried.
            try { await deliveries.Release(delivery.Id, CancellationToken.None); } catch (Exception) { /* the lease runs out instead */ }
            return;
        }
        catch (OperationCanceledException)
        {
            error = $"no answer within {settings.Timeout.TotalSeconds:0.###} s";
        }
        catch (HttpRequestException e)
        {
            error = e.InnerException is { } inner && !e.Message.Contains(inner.Message, StringComparison.Ordinal) ? $"{e.Message} ({inner.Message})" : e.Message;
        }
        var record = new WebhookAttempt(attempt, at, status, error, Math.Round(watch.Elapsed.TotalMilliseconds, 1));

        if (status is >= 200 and < 300)
        {
            await deliveries.Succeeded(delivery.Id, record, CancellationToken.None);
            return;
        }
        var now = clock.GetCurrentInstant();
        var failingSince = delivery.FailingSince ?? at;
        var outcome = error ?? $"HTTP {status}";
        if (now - failingSince >= Duration.FromTimeSpan(settings.DisableAfter))
        {
            await Disable(shard, target.Subscription, $"No 2xx for delivery {delivery.Id} since {Infrastructure.Json.Format(failingSince)} " +
                                               $"({attempt} attempts; the last: {outcome}). POST /webhooks/{target.Subscription.Id}/enable when the receiver works again.", now);
            await deliveries.Failed(delivery.Id, record, failingSince, now, CancellationToken.None);
            return;
        }
        var pause = Backoff(attempt);
        logger.LogDebug("Webhook {WebhookId} delivery {DeliveryId} attempt {Attempt} failed ({Outcome}); next attempt in {Pause}.",
            delivery.WebhookId, delivery.Id, attempt, outcome, pause);
        await deliveries.Failed(delivery.Id, record, failingSince, now + Duration.FromTimeSpan(pause), CancellationToken.None);
    }

    /// <summary>The pause after failed attempt n: FirstRetryDelay × 2^(n-1), at most MaxRetryDelay, ±10% so receivers coming back are not hit all at once.</summary>
    public TimeSpan Backoff(int attempt)
    {
        var pause = settings.FirstRetryDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 30));
        pause = Math.Min(pause, settings.MaxRetryDelay.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(pause * (0.9 + Random.Shared.NextDouble() * 0.2));
    }

    private async Task Disable(IMartenDatabase shard, WebhookSubscription stale, string reason, Instant now)
    {
        await using var session = store.LightweightSession(Marten.Services.SessionOptions.ForDatabase(shard));
        var subscription = await session.LoadAsync<WebhookSubscription>(stale.Id);
        if (subscription is null || subscription.Status != WebhookStatus.Active) return;
        subscription.Status = WebhookStatus.Disabled;
        subscription.DisabledReason = reason;
        subscription.DisabledAt = now;
        session.Store(subscription);
        await session.SaveChangesAsync();
        cache.Changed(subscription.TenantId);
        logger.LogWarning("Webhook {WebhookId} of tenant {TenantId} ({Url}) is disabled: {Reason} Its deliveries are kept and sent, in order, once it is enabled.",
            subscription.Id, subscription.TenantId, subscription.Url, reason);
    }
}
