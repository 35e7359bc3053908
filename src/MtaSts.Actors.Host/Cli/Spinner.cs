using Spectre.Console;

namespace MtaSts.Actors.Host.Cli;

/// <summary>
/// A Spectre.Console status spinner on stderr while something slow runs (a check, a call to the gateway), only when
/// a person is watching: the output is the real, unredirected terminal and not <c>--json</c>. Scripts and tests see
/// nothing of it.
/// </summary>
internal static class Spinner
{
    public static async Task<T> RunAsync<T>(TextWriter stdout, bool json, string what, Func<Task<T>> work)
    {
        if (json || !ReferenceEquals(stdout, Console.Out) || Console.IsOutputRedirected || Console.IsErrorRedirected)
            return await work().ConfigureAwait(false);
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return await console.Status().Spinner(Spectre.Console.Spinner.Known.Dots)
            .StartAsync(what + "…", _ => work()).ConfigureAwait(false);
    }
}
