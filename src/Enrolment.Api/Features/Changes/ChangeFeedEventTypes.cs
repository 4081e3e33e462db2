using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using JasperFx.Events;
using Marten;
using Marten.Events;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Npgsql;
using Wolverine.Http;

namespace Enrolment.Api.Features.Changes;

/// <summary>
/// The stored type names of the enrolment events, earlier shapes' included: the feed is enrolment changes, not
/// assignment events, and a change stored in an earlier shape is still a change.
/// </summary>
public sealed class ChangeFeedEventTypes(IDocumentStore store)
{
    public IReadOnlyList<string> Names { get; } = Enrolments.StoredEnrolmentEvents.Names(store);
}
