using MtaSts.Actors.Configuration;

namespace MtaSts.Actors.Logging;

/// <summary>The <c>mtasts.log</c> section: where the operator log goes and from which level.</summary>
public sealed record LogOptions
{
    /// <summary>Text log: a file path, <c>-</c> for standard output, empty for none.</summary>
    public string Text { get; init; } = "-";

    /// <summary>JSON lines log: a file path, <c>-</c> for standard output, empty for none.</summary>
    public string Json { get; init; } = "";

    public MailLogLevel Level { get; init; } = MailLogLevel.Info;

    /// <summary>Reads <c>mtasts.log { text, json, level }</c>; a bad level is an error naming its key.</summary>
    public static LogOptions Read(ConfigSection s)
    {
        var d = new LogOptions();
        return new LogOptions
        {
            Text = s.Value("text") ?? d.Text,
            Json = s.Value("json") ?? d.Json,
            Level = s.Get("level", d.Level, v => Enum.TryParse<MailLogLevel>(v, ignoreCase: true, out var l) && Enum.IsDefined(l) && !int.TryParse(v, out _)
                ? l : throw new FormatException($"expected one of {string.Join(", ", Enum.GetNames<MailLogLevel>()).ToLowerInvariant()}")),
        };
    }

    /// <summary>The operator log these options describe; <paramref name="text"/> replaces the text target (tests).
    /// Files and the console are written in batches by a background task (one flush per batch, not per line).</summary>
    public MailLog CreateLog(TextWriter? text = null) =>
        new(text ?? Open(Text), Open(Json), Level, background: text is null);

    private static TextWriter? Open(string target) => target switch
    {
        "" => null,
        "-" => Console.Out,
        _ => new StreamWriter(LogFile.OpenAppend(target)) { AutoFlush = false },
    };
}
