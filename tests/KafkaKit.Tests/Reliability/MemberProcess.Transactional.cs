using System.Globalization;
using KafkaKit.Tests.Consuming.Transactions;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Reliability;

/// <content>
/// The transactional member: an exactly-once consumer (<see cref="ExactlyOnceKit.Member"/>: one output per input, same
/// key and value, its instance and transaction number in headers) that hangs in its <c>hangAfter</c>-th handler call,
/// after producing, so its open transaction holds output and can never commit: the test kills it there. It writes
/// <c>committed {instance} {transaction}</c> when a transaction committed (before the next one opens, so before any
/// later line) and <c>open {key}</c> when it hangs.
/// </content>
internal sealed partial class MemberProcess
{
    /// <summary>The first argument that makes the test assembly run a transactional member.</summary>
    public const string TransactionalVerb = "reliability-eos-member";

    /// <summary>Gets the key of the record whose handler call hangs in the open transaction, once the member reported it.</summary>
    public Task<string> Hung => _hung.Task;

    /// <summary>Starts a transactional member process reading <see cref="ExactlyOnceKit.Input"/>.</summary>
    /// <param name="name">The consumer's name (<c>transactional.id</c> = <c>{prefix}-{name}</c>).</param>
    /// <param name="bootstrapServers">The embedded cluster.</param>
    /// <param name="group">The consumer group.</param>
    /// <param name="prefix">The transactional id prefix.</param>
    /// <param name="hangAfter">The handler call (1-based, over all partitions) that hangs after producing.</param>
    /// <param name="onCommitted">Told each committed transaction (instance, number), in the order the member committed them.</param>
    public static MemberProcess StartTransactional(string name, string bootstrapServers, string group, string prefix, int hangAfter, Action<string, long> onCommitted) =>
        Start(name, [TransactionalVerb, name, bootstrapServers, group, prefix, hangAfter.ToString(CultureInfo.InvariantCulture)], static _ => { }, onCommitted);

    /// <summary>The transactional member process's main: runs until standard input closes (or it is killed).</summary>
    /// <param name="args">name, bootstrap servers, group, transactional id prefix, the handler call that hangs.</param>
    /// <returns>The exit code: 0, or 1 when the consumer faulted.</returns>
    internal static async Task<int> RunTransactionalAsync(string[] args)
    {
        var (name, bootstrapServers, group, prefix) = (args[0], args[1], args[2], args[3]);
        var hangAfter = int.Parse(args[4], CultureInfo.InvariantCulture);
        var output = TextWriter.Synchronized(Console.Out);
        var calls = new HandlerCalls(instanceMarker: "p") { OnCommitted = (instance, n) => output.WriteLine($"committed {instance} {n}") };
        var handled = 0;
        await using var consumer = ExactlyOnceKit.Member(name, ExactlyOnceKit.Options(bootstrapServers, group, prefix, ExactlyOnceKit.Input), new CapturingLoggerFactory(), calls, async (result, ct) =>
        {
            if (Interlocked.Increment(ref handled) == hangAfter)
            {
                output.WriteLine("open " + result.Message.Key);
                await Task.Delay(Timeout.Infinite, ct);
            }
        });
        await consumer.StartAsync();
        return await RunUntilInputClosesAsync(consumer, output);
    }
}
