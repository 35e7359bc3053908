namespace MtaSts.Actors.LoadTests.Receivers;

/// <summary>
/// How hostile the receiver is. Shares are probabilities per event (0..1). A plain sink "accepts everything with
/// zero backpressure", which hides the retry and back-off paths; these shares exercise them.
/// </summary>
public sealed record FaultPlan
{
    public double Banner421 { get; init; }   // 421 at connect, then close (site busy)
    public double Mail451 { get; init; }     // 451 to MAIL FROM
    public double Rcpt451 { get; init; }     // 451 to RCPT (greylisting, rate limits)
    public double Rcpt550 { get; init; }     // 550 to RCPT (permanent: must bounce, not retry)
    public double Data451 { get; init; }     // 451 after the final '.' (message not taken)
    public TimeSpan DataDelay { get; init; } // wait before the final reply to DATA (slow receiver)
    public double DataDelayShare { get; init; } = 1.0;

    public static readonly FaultPlan None = new();

    public bool IsHostile => Banner421 > 0 || Mail451 > 0 || Rcpt451 > 0 || Rcpt550 > 0 || Data451 > 0 || DataDelay > TimeSpan.Zero;

    public string Describe() => !IsHostile ? "accept all" :
        string.Join(", ", new[]
        {
            Banner421 > 0 ? $"421 banner {Banner421:P0}" : null,
            Mail451 > 0 ? $"451 MAIL {Mail451:P0}" : null,
            Rcpt451 > 0 ? $"451 RCPT {Rcpt451:P0}" : null,
            Rcpt550 > 0 ? $"550 RCPT {Rcpt550:P0}" : null,
            Data451 > 0 ? $"451 after DATA {Data451:P0}" : null,
            DataDelay > TimeSpan.Zero ? $"DATA delay {DataDelay.TotalMilliseconds:0} ms ({DataDelayShare:P0})" : null,
        }.Where(s => s is not null));
}
