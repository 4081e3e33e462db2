using System.Text;

namespace Enrolment.Api.Features.Scim;

/// <summary>One comparison of a filter: <c>attribute eq value</c>, the attribute lowercased, "members[value eq x]" read as "members.value".</summary>
public sealed record ScimCondition(string Attribute, string? Value);

/// <summary>
/// The filters identity providers send (RFC 7644 §3.4.2.2): equality on one attribute, possibly several joined by
/// <c>and</c>, and a value filter on members (<c>members[value eq "…"]</c>). Anything else is 400 invalidFilter, said
/// plainly, rather than a guess.
/// </summary>
public static class ScimFilter
{
    public static bool TryParse(string? text, out List<ScimCondition> conditions, out string? error)
    {
        conditions = [];
        error = null;
        if (string.IsNullOrWhiteSpace(text)) return true;
        if (text.Length > 2048) { error = "The filter is too long."; return false; }
        var tokens = Tokenize(text, out error);
        if (tokens is null) return false;
        var i = 0;
        while (true)
        {
            if (!TryTerm(tokens, ref i, conditions, out error)) return false;
            if (i == tokens.Count) return true;
            if (!tokens[i].Equals("and", StringComparison.OrdinalIgnoreCase) || tokens[i].StartsWith('"'))
            {
                error = $"Only 'eq' comparisons joined by 'and' are supported (found '{Short(tokens[i])}').";
                return false;
            }
            i++;
        }
    }

    private static bool TryTerm(List<string> tokens, ref int i, List<ScimCondition> conditions, out string? error)
    {
        error = null;
        if (i >= tokens.Count) { error = "The filter ends too early."; return false; }
        var attribute = tokens[i++];
        if (attribute.StartsWith('"') || attribute is "[" or "]" or "(" or ")") { error = $"Expected an attribute name, found '{Short(attribute)}'."; return false; }
        string? prefix = null;
        if (i < tokens.Count && tokens[i] == "[")
        {
            // members[value eq "x"]: the inner comparison on a sub-attribute of the multi-valued attribute.
            prefix = attribute;
            i++;
            if (i >= tokens.Count) { error = "The filter ends too early."; return false; }
            attribute = tokens[i++];
        }
        if (i >= tokens.Count || !tokens[i].Equals("eq", StringComparison.OrdinalIgnoreCase))
        {
            error = i < tokens.Count ? $"Only the 'eq' operator is supported (found '{Short(tokens[i])}')." : "The filter ends too early.";
            return false;
        }
        i++;
        if (i >= tokens.Count) { error = "The comparison has no value."; return false; }
        var raw = tokens[i++];
        string? value = raw.StartsWith('"') ? raw[1..^1] : raw.Equals("null", StringComparison.OrdinalIgnoreCase) ? null : raw.ToLowerInvariant();
        if (prefix is not null)
        {
            if (i >= tokens.Count || tokens[i] != "]") { error = "A value filter '[' is not closed by ']'."; return false; }
            i++;
            attribute = prefix + "." + attribute;
        }
        attribute = Normalize(attribute);
        conditions.Add(new ScimCondition(attribute, value));
        return true;
    }

    /// <summary>Lowercased, without the core schema's URN prefix (urn:…:core:2.0:User:userName is userName).</summary>
    public static string Normalize(string attribute)
    {
        if (attribute.StartsWith("urn:ietf:params:scim:schemas:core:2.0:", StringComparison.OrdinalIgnoreCase))
            attribute = attribute[(attribute.LastIndexOf(':') + 1)..];
        return attribute.ToLowerInvariant();
    }

    private static List<string>? Tokenize(string text, out string? error)
    {
        error = null;
        var tokens = new List<string>();
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (char.IsWhiteSpace(c)) { i++; continue; }
            if (c is '[' or ']' or '(' or ')')
            {
                if (c is '(' or ')') { error = "Parentheses are not supported in filters."; return null; }
                tokens.Add(c.ToString()); i++; continue;
            }
            if (c == '"')
            {
                var value = new StringBuilder("\"");
                i++;
                var closed = false;
                while (i < text.Length)
                {
                    if (text[i] == '\\' && i + 1 < text.Length) { value.Append(text[i + 1]); i += 2; continue; }
                    if (text[i] == '"') { closed = true; i++; break; }
                    value.Append(text[i++]);
                }
                if (!closed) { error = "A quoted value in the filter is not closed."; return null; }
                tokens.Add(value.Append('"').ToString());
                continue;
            }
            var start = i;
            while (i < text.Length && !char.IsWhiteSpace(text[i]) && text[i] is not ('[' or ']' or '(' or ')' or '"')) i++;
            tokens.Add(text[start..i]);
        }
        return tokens;
    }

    private static string Short(string token) => token.Length > 40 ? token[..40] + "…" : token;
}
