namespace MtaSts.Actors.Policy.Parsing;

/// <summary>RFC 8461 §4.1 MX host matching.</summary>
public static class MxMatcher
{
    public static bool Matches(MxPattern pattern, string mxHost) => throw new NotImplementedException();

    public static bool MatchesAny(StsPolicy policy, string mxHost) => policy.Mx.Any(p => Matches(p, mxHost));
}
