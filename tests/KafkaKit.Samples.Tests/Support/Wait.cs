namespace KafkaKit.Samples.Tests.Support;

/// <summary>Condition waits with deadlines (never fixed sleeps).</summary>
internal static class Wait
{
    /// <summary>Evaluates <paramref name="condition"/> every 50 ms until it holds, failing the test after <paramref name="timeout"/>.</summary>
    public static async Task ForAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow >= deadline)
            {
                Assert.Fail($"Timed out after {timeout.TotalSeconds:F0} s waiting for: {what}");
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    /// <inheritdoc cref="ForAsync(Func{Task{bool}}, TimeSpan, string, CancellationToken)"/>
    public static Task ForAsync(Func<bool> condition, TimeSpan timeout, string what, CancellationToken cancellationToken) =>
        ForAsync(() => Task.FromResult(condition()), timeout, what, cancellationToken);
}
