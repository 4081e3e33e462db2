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
/// The cursor: opaque to clients, base64url of (version, tenant, [move epoch,] transaction id, sequence). The tenant is in
/// it so that another tenant's cursor is refused rather than silently read as a position in this tenant's feed. A
/// position is a shard's own (its transaction ids and sequence numbers), so a tenant that moved shards (`tenants move`)
/// issues version 2, with the number of moves so far; an older epoch's cursor is translated (ChangeFeedQuery.Translate).
/// Version 1 (no epoch) is epoch 0, and is still what a tenant that never moved gets.
/// </summary>
public static class ChangeCursor
{
    public static string Encode(string tenantId, int epoch, FeedPosition position) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(epoch == 0
                ? FormattableString.Invariant($"1|{tenantId}|{position.TransactionId}|{position.Sequence}")
                : FormattableString.Invariant($"2|{tenantId}|{epoch}|{position.TransactionId}|{position.Sequence}")))
            .TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>The epoch and position, or null with the reason the cursor is refused.</summary>
    public static (int Epoch, FeedPosition Position)? Decode(string cursor, string tenantId, out string? error)
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
        var epoch = 0;
        if (parts.Length == 5 && parts[0] == "2" && int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out epoch) && epoch > 0)
            parts = [parts[0], parts[1], parts[3], parts[4]];
        else if (parts.Length != 4 || parts[0] != "1") return null;
        if (!ulong.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var tx)
            || !long.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var seq)) return null;
        if (parts[1] != tenantId)
        {
            error = "after is a cursor of another tenant's feed: a cursor only works with the credentials it was issued to.";
            return null;
        }
        error = null;
        return (epoch, new FeedPosition(tx, seq));
    }
}
