using MtaSts.Actors.Dns;

namespace MtaSts.Actors.Policy.Parsing;

/// <summary>RFC 8461 §3.1: the `_mta-sts.&lt;domain&gt;` TXT record.</summary>
public static class StsTxtParser
{
    /// <summary>Parses one (already concatenated) record string.</summary>
    public static ParseResult<StsTxtRecord> Parse(string record) => throw new NotImplementedException();

    /// <summary>From all TXT RRs at the name: concatenate each RR's strings, discard records not starting
    /// with `v=STSv1`, require exactly one, parse it.</summary>
    public static ParseResult<StsTxtRecord> Select(IReadOnlyList<TxtRecord> records) => throw new NotImplementedException();
}
