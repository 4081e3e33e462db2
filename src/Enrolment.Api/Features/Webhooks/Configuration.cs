using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Contracts;
using Marten;
using Wolverine;

namespace Enrolment.Api.Features.Webhooks;

/// <summary>Webhooks: settings, the subscriptions document and deliveries table, the recorder's queue, the sender.</summary>
public static class WebhooksConfiguration
{
    public static void AddWebhooks(this WebApplicationBuilder builder, RunMode mode)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;
        services.AddOptions<WebhookSettings>()
            .Bind(configuration.GetSection("Webhooks"))
            .Validate(s => s.Timeout > TimeSpan.Zero && s.FirstRetryDelay > TimeSpan.Zero && s.MaxRetryDelay >= s.FirstRetryDelay && s.DisableAfter > TimeSpan.Zero,
                "Webhooks:Timeout, FirstRetryDelay and DisableAfter must be positive, and MaxRetryDelay at least FirstRetryDelay.")
            .Validate(s => s.PollInterval > TimeSpan.Zero && s.BatchSize >= 1 && s.MaxConcurrentRequests >= 1,
                "Webhooks:PollInterval must be positive, and Webhooks:BatchSize and MaxConcurrentRequests at least 1.")
            .ValidateOnStart();
        var settings = configuration.GetSection("Webhooks").Get<WebhookSettings>() ?? new WebhookSettings();

        services.AddAuthorizationBuilder()
            .AddPolicy(AuthPolicies.Webhooks, p => p.RequireAuthenticatedUser()
                .RequireAssertion(c => Scopes.Grants(c.User.FindAll(BasicAuthenticationHandler.ScopeClaim).Select(x => x.Value), Scopes.Webhooks)));

        services.AddSingleton<WebhookSecrets>();
        services.AddSingleton<WebhookSubscriptionCache>();
        services.AddSingleton<Infrastructure.Sql.WolverineInbox>();
        services.ConfigureMarten(opts =>
        {
            opts.Schema.For<WebhookSubscription>().SingleTenanted().DoNotPartition().Duplicate(x => x.TenantId);
            opts.Storage.ExtendedSchemaObjects.Add(WebhookDeliveries.Table());
        });

        services.AddHttpClient(WebhookSender.HttpClientName, c =>
            {
                c.Timeout = Timeout.InfiniteTimeSpan; // the sender's own Webhooks:Timeout applies
                c.DefaultRequestHeaders.UserAgent.ParseAdd("enrolment-webhooks/1");
            })
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler
            {
                // A redirect could lead anywhere, a private address too: a 3xx is a failed attempt, the URL is what was subscribed.
                AllowAutoRedirect = false,
                UseCookies = false,
                UseProxy = false,
                PooledConnectionLifetime = TimeSpan.FromMinutes(5), // DNS changes are seen, and checked again in ConnectCallback
                ConnectTimeout = TimeSpan.FromSeconds(10),
                ConnectCallback = WebhookTargets.Connect(settings.AllowPrivateTargets),
            });
        if (mode.IsService && settings.Enabled) services.AddHostedService<WebhookSender>();
        services.ConfigureWolverine(opts => RouteToRecorder(opts, settings));
    }

    /// <summary>
    /// The durable local queue the recorder reads (fed by <see cref="Messaging.IntegrationEventQueue"/>). Messages of one enrolment share a group id, and the queue handles one group
    /// at a time, so the recorder seldom finds a version ahead of its predecessor; when it does (a crash, or overflow of the
    /// queue back to the inbox) it waits for it by inbox id, which is why each envelope's id is derived from its event.
    /// </summary>
    private static void RouteToRecorder(WolverineOptions opts, WebhookSettings settings)
    {
        if (!settings.Enabled) return;
        opts.MessagePartitioning.ByMessage<EnrolmentStatusChanged>(m => m.EnrolmentId.ToString());
        opts.MessagePartitioning.ByMessage<EnrolmentReminderRecorded>(m => m.EnrolmentId.ToString());
        opts.LocalQueue(RecordWebhookDeliveriesHandler.Queue).UseDurableInbox().PartitionProcessingByGroupId(Wolverine.Configuration.PartitionSlots.Five)
            .CustomizeOutgoing(envelope => envelope.Id = envelope.Message switch
            {
                EnrolmentStatusChanged m => RecordWebhookDeliveriesHandler.InboxId(m.MessageId),
                EnrolmentReminderRecorded m => RecordWebhookDeliveriesHandler.InboxId(m.MessageId),
                _ => envelope.Id,
            });
        // Wolverine's route puts each envelope in the durable inbox (of the tenant's shard) in the change's transaction,
        // which the recorder's order check and a dead node's recovery rely on. IntegrationEventQueue publishes through
        // it only the events a webhook subscription of the tenant wants, on either transport.
        opts.PublishMessage<EnrolmentStatusChanged>().ToLocalQueue(RecordWebhookDeliveriesHandler.Queue);
        opts.PublishMessage<EnrolmentReminderRecorded>().ToLocalQueue(RecordWebhookDeliveriesHandler.Queue);
    }
}
