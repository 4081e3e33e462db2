using Microsoft.Extensions.Caching.Memory;

namespace Enrolment.Api.Infrastructure.Auth;

/// <summary>
/// Failed authentications counted per client address in a one-minute window, so brute force meets 429 while a
/// stranger cannot lock a tenant out (the count belongs to the caller's address, not to the tenant or key).
/// </summary>
public static class ClientFailures
{
    /// <summary>Seconds until the client may try again, or null when it is not blocked.</summary>
    public static int? BlockedFor(IMemoryCache cache, string scheme, string client, int maxPerMinute)
    {
        if (!cache.TryGetValue(Key(scheme, client), out Counter? counter) || counter!.Count < maxPerMinute) return null;
        return Math.Max(1, (int)Math.Ceiling((counter.WindowEnds - DateTimeOffset.UtcNow).TotalSeconds));
    }

    public static void Record(IMemoryCache cache, string scheme, string client)
    {
        var key = Key(scheme, client);
        if (!cache.TryGetValue(key, out Counter? counter)) counter = new Counter(DateTimeOffset.UtcNow.AddMinutes(1));
        Interlocked.Increment(ref counter!.Count);
        cache.Set(key, counter, counter.WindowEnds);
    }

    private static string Key(string scheme, string client) => $"auth-failures:{scheme}:{client}";

    private sealed class Counter(DateTimeOffset windowEnds)
    {
        public readonly DateTimeOffset WindowEnds = windowEnds;
        public int Count;
    }
}
