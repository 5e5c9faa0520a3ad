using KafkaKit.Samples.Tests.Support;
using KafkaKit.Tests.Support;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;

namespace KafkaKit.Samples.Tests.Notifications;

/// <summary>
/// The page in a real browser: headless Chromium (Debian's <c>chromium</c> + <c>chromium-driver</c>) driven through
/// Selenium WebDriver. Reported skipped, with the reason, when no Chromium is installed.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Browser")]
public sealed class NotificationsPageTests
{
    private static readonly TimeSpan UiTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Where the browser and its driver are: <c>CHROMIUM_PATH</c> / <c>CHROMEDRIVER_PATH</c>, else Debian's paths.</summary>
    private static string ChromiumPath => Environment.GetEnvironmentVariable("CHROMIUM_PATH") ?? "/usr/bin/chromium";

    private static string ChromeDriverPath => Environment.GetEnvironmentVariable("CHROMEDRIVER_PATH") ?? "/usr/bin/chromedriver";

    [TestCase("websocket")]
    [TestCase("sse")]
    [CancelAfter(120_000)]
    public async Task Page_BobOpensHisPage_SeesWhatCameWhileOfflineThenAlicesNotificationLive(string transport, CancellationToken cancellationToken)
    {
        // Arrange: the sample as `dotnet run` starts it (its own embedded cluster), a notification to bob while he is offline,
        // then a browser with his page open.
        if (!File.Exists(ChromiumPath) || !File.Exists(ChromeDriverPath))
        {
            Assert.Ignore($"Browser test skipped: no Chromium at {ChromiumPath} or no chromedriver at {ChromeDriverPath} (install Debian's chromium and chromium-driver, or set CHROMIUM_PATH / CHROMEDRIVER_PATH).");
        }

        await using var host = await SampleHost.StartAsync(cluster: null, cancellationToken);
        using var driver = StartChromium();
        var text = $"See you at 12:30 ({Guid.NewGuid():N})";
        var whileOffline = $"Sent while you were away ({Guid.NewGuid():N})";
        using (var response = await host.PostAsync("carol", "bob", whileOffline, cancellationToken))
        {
            Assert.That(response.StatusCode, Is.EqualTo(System.Net.HttpStatusCode.Accepted));
        }

        await Wait.ForAsync(async () => (await host.RecentAsync("bob", cancellationToken)).Count == 1, UiTimeout, "carol's notification to the offline bob consumed", cancellationToken);
        try
        {
            // The page takes a WebSocket unless ?transport=sse (or no WebSocket gets through).
            await driver.Navigate().GoToUrlAsync(new Uri(host.BaseAddress, transport == "sse" ? "/?user=bob&transport=sse" : "/?user=bob"));
            var bobTab = driver.CurrentWindowHandle;
            WaitFor(driver, d => d.FindElement(By.Id("connection")).GetAttribute("data-state") == "live", "bob's page is live");
            Assert.That(driver.FindElement(By.Id("connection")).GetAttribute("data-transport"), Is.EqualTo(transport));
            WaitFor(driver, d => d.FindElements(By.CssSelector("#inbox li .text")).Any(e => e.Text == whileOffline), "what came while bob was offline is on his page");

            // Act: a second tab; pick alice in the "You are" list, bob as recipient, type and send.
            driver.SwitchTo().NewWindow(WindowType.Tab);
            await driver.Navigate().GoToUrlAsync(host.BaseAddress);
            WaitFor(driver, d => d.FindElements(By.CssSelector("#me option")).Count == 4, "the user list loaded");
            driver.FindElement(By.CssSelector("#me option[value='alice']")).Click();
            WaitFor(driver, d => d.Url.Contains("user=alice", StringComparison.Ordinal) && d.FindElement(By.Id("connection")).GetAttribute("data-state") == "live", "alice's page is live");
            Assert.That(driver.FindElements(By.CssSelector("#to option[value='alice']")), Is.Empty, "alice cannot pick herself as recipient");
            driver.FindElement(By.CssSelector("#to option[value='bob']")).Click();
            driver.FindElement(By.Id("message")).SendKeys(text);
            driver.FindElement(By.Id("send")).Click();
            WaitFor(driver, d => d.FindElement(By.Id("status")).GetAttribute("data-state") is "sent" or "error", "the send finished");
            Assert.That(driver.FindElement(By.Id("status")).GetAttribute("data-state"), Is.EqualTo("sent"), driver.FindElement(By.Id("status")).Text);
            Assert.That(driver.FindElement(By.Id("message")).GetAttribute("value"), Is.Empty, "the form is cleared after a send");

            // Assert: it appears in bob's tab without a reload, and not in alice's.
            driver.SwitchTo().Window(bobTab);
            WaitFor(driver, d => d.FindElements(By.CssSelector("#inbox li .text")).Any(e => e.Text == text), "the notification appears on bob's page");
            var item = driver.FindElements(By.CssSelector("#inbox li")).Single(e => e.FindElement(By.CssSelector(".text")).Text == text);
            Assert.That(item.FindElement(By.CssSelector(".meta")).Text, Does.StartWith("from alice"));
            Screenshot(driver, $"bob-received-{transport}.png");
            driver.SwitchTo().Window(driver.WindowHandles.Single(h => h != bobTab));
            Assert.That(driver.FindElements(By.CssSelector("#inbox li .text")).Select(e => e.Text), Does.Not.Contain(text));
        }
        catch
        {
            Screenshot(driver, $"failure-{transport}.png");
            throw;
        }
    }

    private static ChromeDriver StartChromium()
    {
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(ChromeDriverPath)!, Path.GetFileName(ChromeDriverPath));
        service.SuppressInitialDiagnosticInformation = true;
        service.HideCommandPromptWindow = true;
        var options = new ChromeOptions { BinaryLocation = ChromiumPath };
        options.AddArguments(
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1100,900");
        return new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
    }

    private static void WaitFor(IWebDriver driver, Func<IWebDriver, bool> condition, string what)
    {
        var wait = new WebDriverWait(driver, UiTimeout) { PollingInterval = TimeSpan.FromMilliseconds(100), Message = $"waiting for: {what}" };
        wait.IgnoreExceptionTypes(typeof(NoSuchElementException), typeof(StaleElementReferenceException));
        wait.Until(condition);
    }

    private static void Screenshot(ChromeDriver driver, string name)
    {
        try
        {
            var path = Path.Combine(TestContext.CurrentContext.WorkDirectory, name);
            driver.GetScreenshot().SaveAsFile(path);
            TestContext.AddTestAttachment(path);
        }
        catch (WebDriverException)
        {
            // the browser is gone: nothing to show
        }
    }
}
