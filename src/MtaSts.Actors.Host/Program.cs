namespace MtaSts.Actors.Host;

public static class Program
{
    /// <summary>The command line is built in <see cref="Cli.GatewayCli"/> (System.CommandLine); `--help` lists it.</summary>
    public static Task<int> Main(string[] args) =>
        Cli.GatewayCli.RunAsync(args, Console.Out, Console.Error, CancellationToken.None);
}
