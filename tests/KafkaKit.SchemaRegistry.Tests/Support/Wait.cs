namespace KafkaKit.SchemaRegistry.Tests.Support;

/// <summary>Condition waits with deadlines (never fixed sleeps).</summary>
internal static class Wait
{
    public static async Task ForAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow >= deadline)
            {
                Assert.Fail($"Timed out after {timeout.TotalSeconds:F0} s waiting for: {what}");
            }

            await Task.Delay(20);
        }
    }
}
