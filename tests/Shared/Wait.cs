using System.Diagnostics;

namespace KafkaKit.Tests.Support;

/// <summary>
/// The condition waits of every test project (never fixed sleeps): poll a condition on a monotonic clock until it holds
/// or the timeout passes, honouring a cancellation token (by default the current test's, set by <c>[CancelAfter]</c>).
/// </summary>
internal static class Wait
{
    /// <summary>How often a condition is evaluated.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(20);

    /// <summary>Polls <paramref name="condition"/> until it holds or <paramref name="timeout"/> passes.</summary>
    /// <param name="condition">The condition; evaluated on the calling context.</param>
    /// <param name="timeout">How long to wait at most.</param>
    /// <param name="cancellationToken">Stops the wait; <see langword="default"/> means the current test's token.</param>
    /// <returns>Whether the condition held in time.</returns>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public static async Task<bool> UntilAsync(Func<bool> condition, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var token = TokenOrTests(cancellationToken);
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed >= timeout)
            {
                return false;
            }

            await Task.Delay(PollInterval, token);
        }

        return true;
    }

    /// <summary>As <see cref="UntilAsync"/>, failing the test with <paramref name="what"/> when the condition does not hold in time.</summary>
    /// <param name="condition">The condition.</param>
    /// <param name="timeout">How long to wait at most.</param>
    /// <param name="what">What is awaited, for the failure message.</param>
    /// <param name="cancellationToken">Stops the wait; <see langword="default"/> means the current test's token.</param>
    /// <returns>A task that completes when the condition holds.</returns>
    public static Task ForAsync(Func<bool> condition, TimeSpan timeout, string what, CancellationToken cancellationToken = default) =>
        ForAsync(() => Task.FromResult(condition()), timeout, () => what, cancellationToken);

    /// <summary>As <see cref="UntilAsync"/>, failing the test with the state <paramref name="describe"/> gives at the deadline.</summary>
    /// <param name="condition">The condition.</param>
    /// <param name="timeout">How long to wait at most.</param>
    /// <param name="describe">Describes what is awaited and where it stands, evaluated only on failure.</param>
    /// <param name="cancellationToken">Stops the wait; <see langword="default"/> means the current test's token.</param>
    /// <returns>A task that completes when the condition holds.</returns>
    public static Task ForAsync(Func<bool> condition, TimeSpan timeout, Func<string> describe, CancellationToken cancellationToken = default) =>
        ForAsync(() => Task.FromResult(condition()), timeout, describe, cancellationToken);

    /// <summary>Runs <paramref name="attempt"/> until it returns <see langword="true"/>, failing the test with <paramref name="what"/> at the deadline.</summary>
    /// <param name="attempt">The asynchronous condition.</param>
    /// <param name="timeout">How long to wait at most.</param>
    /// <param name="what">What is awaited, for the failure message.</param>
    /// <param name="cancellationToken">Stops the wait; <see langword="default"/> means the current test's token.</param>
    /// <returns>A task that completes when the condition holds.</returns>
    public static Task ForAsync(Func<Task<bool>> attempt, TimeSpan timeout, string what, CancellationToken cancellationToken = default) =>
        ForAsync(attempt, timeout, () => what, cancellationToken);

    private static async Task ForAsync(Func<Task<bool>> attempt, TimeSpan timeout, Func<string> describe, CancellationToken cancellationToken)
    {
        var token = TokenOrTests(cancellationToken);
        var clock = Stopwatch.StartNew();
        while (!await attempt())
        {
            if (clock.Elapsed >= timeout)
            {
                Assert.Fail($"Timed out after {timeout.TotalSeconds:F1} s waiting for: {describe()}");
            }

            await Task.Delay(PollInterval, token);
        }
    }

    private static CancellationToken TokenOrTests(CancellationToken cancellationToken) =>
        cancellationToken.CanBeCanceled ? cancellationToken : TestContext.CurrentContext.CancellationToken;
}
