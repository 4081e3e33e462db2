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
/// The cursor: opaque to clients, base64url of (version, tenant, transaction id, sequence). The tenant is in it so
/// that another tenant's cursor is refused rather than silently read as a position in this tenant's feed.
/// </summary>
public static class ChangeCursor
{
    public static string Encode(string tenantId, FeedPosition position) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(FormattableString.Invariant($"1|{tenantId}|{position.TransactionId}|{position.Sequence}")))
            .TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>The position, or null with the reason the cursor is refused.</summary>
    public static FeedPosition? Decode(string cursor, string tenantId, out string? error)
    {
        error = "after is not a cursor this service issued: pass a nextCursor (or an item's cursor) as it is.";
        if (cursor.Length is 0 or > 256) return null;
        string text;
        try
        {
            var base64 = cursor.Replace('-', '+').Replace('_', '/');
            text = Encoding.UTF8.GetString(Convert.FromBase64String(base64.PadRight(base64.Length + (4 - base64.Length % 4) % 4, '=')));
        }
        catch (FormatException) { return null; }
        var parts = text.Split('|');
        if (parts.Length != 4 || parts[0] != "1"
            || !ulong.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var tx)
            || !long.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var seq)) return null;
        if (parts[1] != tenantId)
        {
            error = "after is a cursor of another tenant's feed: a cursor only works with the credentials it was issued to.";
            return null;
        }
        error = null;
        return new FeedPosition(tx, seq);
    }
}
