namespace MtaSts.Actors.Policy.Parsing;

/// <summary>RFC 8461 §3.2: the policy body.</summary>
public static class StsPolicyParser
{
    public const int MaxBodyBytes = 64 * 1024;

    public static ParseResult<StsPolicy> Parse(string body) => throw new NotImplementedException();
}
