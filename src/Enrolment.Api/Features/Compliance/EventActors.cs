using System.Diagnostics;
using System.Security.Claims;
using Enrolment.Api.Features.Mimecast;
using Enrolment.Api.Features.Operations;
using Enrolment.Api.Features.Time;
using Enrolment.Api.Infrastructure.Auth;
using JasperFx.Events;
using Marten;
using Wolverine;
using Wolverine.Http;

namespace Enrolment.Api.Features.Compliance;

/// <summary>
/// Who caused an event (PRODUCT.md, "Compliance"): a credential (its secret id or Mimecast access key id, never a
/// secret), a bus message, a fan-out operation (with the credential that started it) or the clock.
/// </summary>
/// <param name="Type">secret, mimecast-key, bus, operation, clock, or legacy for events written before actors were recorded.</param>
/// <param name="Id">The secret id, access key id, message id, operation id or clock name; null for legacy.</param>
/// <param name="StartedBy">For an operation: the credential whose request started it.</param>
public sealed record Actor(string Type, string? Id, Credential? StartedBy = null)
{
    public const string Secret = "secret", MimecastKey = "mimecast-key", Bus = "bus", Operation = "operation", Clock = "clock", LegacyType = "legacy";

    public static readonly Actor Legacy = new(LegacyType, null);

    /// <summary>The time-driven transitions.</summary>
    public static readonly Actor TimeDriven = new(Clock, "time-driven-transitions");

    public override string ToString() => $"{Type}:{Id}";

    /// <summary>This actor as the credential an operation names as its starter (its type and id, nothing nested).</summary>
    public Credential AsCredential() => new(Type, Id);
}

/// <summary>
/// The credential that started a fan-out operation: a secret or a Mimecast key, by type and id. Its own type, not an
/// <see cref="Actor"/>, so that the documented schema is not recursive (contract-test generators refuse circular ones).
/// </summary>
public sealed record Credential(string Type, string? Id);

/// <summary>
/// Records the actor on every event a session appends with Marten's own event metadata: user_name ("type:id"), the
/// headers actor-type, actor-id (and started-by-type, started-by-id for an operation), correlation_id (the W3C trace
/// id of the request or message) and causation_id (the message that caused it). Set once per HTTP request and per
/// message handler by the middlewares below; a path that opens its own session calls <see cref="Stamp"/> itself.
/// </summary>
public static class EventActors
{
    public const string TypeHeader = "actor-type", IdHeader = "actor-id", StartedByTypeHeader = "started-by-type", StartedByIdHeader = "started-by-id";

    /// <summary>The one place that sets a session's actor metadata: every event the session appends afterwards carries it.</summary>
    public static void Stamp(IDocumentSession session, Actor actor, string? correlationId, string? causationId = null)
    {
        session.LastModifiedBy = actor.ToString();
        session.SetHeader(TypeHeader, actor.Type);
        if (actor.Id is not null) session.SetHeader(IdHeader, actor.Id);
        if (actor.StartedBy is { } by)
        {
            session.SetHeader(StartedByTypeHeader, by.Type);
            if (by.Id is not null) session.SetHeader(StartedByIdHeader, by.Id);
        }
        session.CorrelationId = correlationId;
        session.CausationId = causationId;
    }

    /// <summary>The actor a session was stamped with (null if none), e.g. to hand it on to the batches of a fan-out.</summary>
    public static Actor? Of(IDocumentSession session) =>
        session.GetHeader(TypeHeader)?.ToString() is { } type ? new Actor(type, session.GetHeader(IdHeader)?.ToString()) : null;

    /// <summary>The actor recorded on a stored event; <see cref="Actor.Legacy"/> for events written before this version.</summary>
    public static Actor Of(IEvent e)
    {
        if (e.GetHeader(TypeHeader)?.ToString() is not { } type) return Actor.Legacy;
        var startedBy = e.GetHeader(StartedByTypeHeader)?.ToString() is { } byType ? new Credential(byType, e.GetHeader(StartedByIdHeader)?.ToString()) : null;
        return new Actor(type, e.GetHeader(IdHeader)?.ToString(), startedBy);
    }

    /// <summary>The credential of an authenticated request: an API secret's id or a Mimecast access key id.</summary>
    public static Actor? Of(ClaimsPrincipal user) =>
        user.FindFirst(BasicAuthenticationHandler.SecretIdClaim)?.Value is { } secretId ? new Actor(Actor.Secret, secretId)
        : user.FindFirst(MimecastAuthenticationHandler.AccessKeyClaim)?.Value is { } accessKey ? new Actor(Actor.MimecastKey, accessKey)
        : null;

    /// <summary>The W3C trace id of the current request or message, else <paramref name="fallback"/>.</summary>
    public static string? CorrelationId(string? fallback) =>
        Activity.Current is { IdFormat: ActivityIdFormat.W3C } activity ? activity.TraceId.ToHexString() : fallback;

    /// <summary>The actor of a message being handled: the fan-out operation, the clock, or the bus message itself.</summary>
    public static Actor For(Envelope envelope) => envelope.Message switch
    {
        SyncEnrolments batch => new Actor(Actor.Operation, batch.OperationId.ToString(), batch.StartedBy),
        ApplyDueTransitions => Actor.TimeDriven,
        _ => new Actor(Actor.Bus, envelope.Id.ToString()),
    };

    /// <summary>Every HTTP endpoint and message handler that writes through an IDocumentSession gets its actor set before it runs.</summary>
    public static void Configure(WolverineOptions opts) =>
        opts.Policies.AddMiddleware(typeof(MessageActorMiddleware),
            chain => chain.Handlers.Any(h => h.Method.GetParameters().Any(p => p.ParameterType == typeof(IDocumentSession))));

    public static void Configure(WolverineHttpOptions opts) =>
        opts.AddMiddleware(typeof(HttpActorMiddleware),
            chain => chain.Method.Method.GetParameters().Any(p => p.ParameterType == typeof(IDocumentSession)));
}

public static class HttpActorMiddleware
{
    public static void Before(HttpContext context, IDocumentSession session)
    {
        if (EventActors.Of(context.User) is { } actor) EventActors.Stamp(session, actor, EventActors.CorrelationId(context.TraceIdentifier));
    }
}

public static class MessageActorMiddleware
{
    public static void Before(Envelope envelope, IDocumentSession session) =>
        EventActors.Stamp(session, EventActors.For(envelope), EventActors.CorrelationId(envelope.CorrelationId), envelope.Id.ToString());
}
