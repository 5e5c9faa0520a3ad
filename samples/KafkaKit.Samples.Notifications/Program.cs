// KafkaKit notifications sample: an ASP.NET Core API that produces notifications to Kafka through KafkaKit, and a
// KafkaKit consumer worker that delivers them live to the recipient's browser (Server-Sent Events). Without configured
// bootstrap servers it runs on an embedded Kafka cluster (in memory). See README.md beside this file.
using KafkaKit.Samples.Notifications;
using Microsoft.Extensions.Options;

NotificationsApp app;
try
{
    app = NotificationsApp.Create(args);
}
catch (UsageException e)
{
    await Console.Error.WriteLineAsync(e.Message);
    return 2;
}

await using (app)
{
    try
    {
        await app.RunAsync();
    }
    catch (OptionsValidationException e)
    {
        await Console.Error.WriteLineAsync($"Invalid configuration:{Environment.NewLine}  {string.Join($"{Environment.NewLine}  ", e.Failures)}");
        return 1;
    }
}

return 0;
