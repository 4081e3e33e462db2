using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine;
using Wolverine.Http;

namespace Enrolment.Api.Features.Completions;

/// <summary>The completion as first recorded, so that a repeat of its completionId answers the same and changes nothing.</summary>
public sealed class CompletionRecord
{
    public string Id { get; set; } = "";
    public CompletionResult Result { get; set; } = null!;

    /// <summary>What the enrolments created after it need of it (<see cref="EnrolmentRules.ApplyEarlierCompletions"/>).</summary>
    public Completion ToCompletion() => new(Result.CompletionId, Result.ContentId, Result.CompletedAt, Result.Answer);
}
