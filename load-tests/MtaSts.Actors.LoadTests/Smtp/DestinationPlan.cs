namespace MtaSts.Actors.LoadTests.Smtp;

/// <summary>
/// Which recipient domain each message goes to. Many-domain runs use a Zipf-like mix (a few big sites, a long
/// tail) because a uniform spread hides the starvation and per-queue overheads a real mix shows. The choice is a
/// pure function of the message id, so two targets in one run get exactly the same traffic.
/// </summary>
public sealed class DestinationPlan
{
    private readonly string[] _domains;
    private readonly double[]? _cdf;

    private DestinationPlan(string[] domains, double zipfExponent)
    {
        _domains = domains;
        if (zipfExponent > 0 && domains.Length > 1)
        {
            _cdf = new double[domains.Length];
            double sum = 0;
            for (var i = 0; i < domains.Length; i++) { sum += 1.0 / Math.Pow(i + 1, zipfExponent); _cdf[i] = sum; }
            for (var i = 0; i < domains.Length; i++) _cdf[i] /= sum;
        }
    }

    public IReadOnlyList<string> Domains => _domains;
    public string Describe => _domains.Length == 1 ? _domains[0] : $"{_domains.Length} domains ({_domains[0]} … {_domains[^1]}){(_cdf is null ? ", uniform" : ", Zipf")}";

    /// <summary>Domains d00001.test … dNNNNN.test (.test is reserved: RFC 2606, never routable).</summary>
    public static DestinationPlan Create(int count, double zipfExponent)
    {
        var width = Math.Max(5, count.ToString(System.Globalization.CultureInfo.InvariantCulture).Length);
        var domains = Enumerable.Range(1, count).Select(i => "d" + i.ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(width, '0') + ".test").ToArray();
        return new DestinationPlan(domains, zipfExponent);
    }

    public string DomainFor(long messageId)
    {
        if (_domains.Length == 1) return _domains[0];
        // SplitMix64 of the id: deterministic, well spread, no shared Random between threads.
        var z = (ulong)messageId + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        if (_cdf is null) return _domains[(int)(z % (ulong)_domains.Length)];
        var u = (z >> 11) * (1.0 / (1UL << 53));
        var idx = Array.BinarySearch(_cdf, u);
        if (idx < 0) idx = ~idx;
        return _domains[Math.Min(idx, _domains.Length - 1)];
    }

    public string RecipientFor(long messageId) =>
        string.Concat("u", (messageId % 1000).ToString(System.Globalization.CultureInfo.InvariantCulture), "@", DomainFor(messageId));
}
