using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

// Short in-process jobs: the whole set runs in a few minutes on the 2-core box (no per-benchmark project build).
// `--job default` style options of BenchmarkDotNet still apply, e.g. `-- --filter *Policy*`.
var config = DefaultConfig.Instance
    .AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance).WithId("short-inprocess"))
    .AddDiagnoser(MemoryDiagnoser.Default)
    .WithOptions(ConfigOptions.JoinSummary);
BenchmarkSwitcher.FromAssembly(typeof(MtaSts.Actors.MicroBench.PolicyLookupBench).Assembly).Run(args, config);
