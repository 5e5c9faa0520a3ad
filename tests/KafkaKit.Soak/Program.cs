// KafkaKit soak: a producer (steady rate plus bursts that fill its queue) and two consumer groups whose membership
// churns (eager and cooperative) run for N minutes while memory, handles and threads are sampled; exits 0 only when
// nothing was lost, the groups committed the end offsets and no metric grew beyond its bound. With no
// --bootstrap-servers it runs on an embedded Kafka cluster in a child process. See docs/reliability.md ("Soak").
using System.Text.Json;
using KafkaKit.Soak;

if (args is [ClusterProcess.ServeArgument, .. var clusterArgs])
{
    return await ClusterProcess.ServeAsync(clusterArgs);
}

var options = SoakOptions.Parse(args, Console.Error);
if (options is null)
{
    return 2;
}

using var interrupted = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    interrupted.Cancel();
};

var result = await SoakRun.RunAsync(options, Console.Out, interrupted.Token);
if (options.JsonPath is { } path)
{
    await File.WriteAllTextAsync(path, JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
}

return result.Passed ? 0 : 1;
