using BenchmarkDotNet.Attributes;
using MtaSts.Actors.Policy;
using MtaSts.Actors.Policy.Parsing;

namespace MtaSts.Actors.MicroBench;

/// <summary>RFC 8461 §4.1 MX pattern matching, done once per delivery connection (the MX host against the policy's
/// mx lines): a literal hit, a wildcard hit, and a miss over a three-line policy.</summary>
[MemoryDiagnoser]
public class MxMatchBench
{
    private const int Ops = 1000;
    private static readonly MxPattern Literal = new("mx1.example.com");
    private static readonly MxPattern Wildcard = new("*.mail.example.com");
    private static readonly StsPolicy Policy = new(StsMode.Enforce,
        [new MxPattern("mx1.example.com"), new MxPattern("mx2.example.com"), new MxPattern("*.mail.example.com")], 604800, []);

    [Benchmark(OperationsPerInvoke = Ops, Description = "literal pattern, match (MX with trailing dot, mixed case)")]
    public int LiteralMatch()
    {
        var n = 0;
        for (int i = 0; i < Ops; i++) n += MxMatcher.Matches(Literal, "MX1.Example.com.") ? 1 : 0;
        return n;
    }

    [Benchmark(OperationsPerInvoke = Ops, Description = "wildcard pattern, match")]
    public int WildcardMatch()
    {
        var n = 0;
        for (int i = 0; i < Ops; i++) n += MxMatcher.Matches(Wildcard, "eu-west-7.mail.example.com") ? 1 : 0;
        return n;
    }

    [Benchmark(OperationsPerInvoke = Ops, Description = "MatchesAny over 3 patterns, no match")]
    public int PolicyMiss()
    {
        var n = 0;
        for (int i = 0; i < Ops; i++) n += MxMatcher.MatchesAny(Policy, "a.b.mail.example.com") ? 1 : 0;
        return n;
    }
}
