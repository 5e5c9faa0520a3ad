using KafkaKit;
using KafkaKit.DependencyInjection;
using KafkaKit.Topics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds KafkaKit to a service collection.</summary>
public static class KafkaKitServiceCollectionExtensions
{
    /// <summary>
    /// Adds KafkaKit with options bound from <paramref name="configuration"/> (usually the <c>"KafkaKit"</c> section; see
    /// <see cref="KafkaKitOptions"/>), validated when the host starts. Calling it again adds nothing but the binding.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configuration">The configuration section.</param>
    /// <returns>A builder to register producers and consumers.</returns>
    public static KafkaKitBuilder AddKafkaKit(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var builder = services.AddKafkaKitCore();
        services.AddOptions<KafkaKitOptions>().Bind(configuration);
        builder.Registry.Configuration = configuration;
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KafkaKitOptions>>(new ConfigurationBindingValidator(configuration)));
        return builder;
    }

    /// <summary>Adds KafkaKit with options set in code, validated when the host starts. Calling it again adds nothing but <paramref name="configure"/>.</summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the options.</param>
    /// <returns>A builder to register producers and consumers.</returns>
    public static KafkaKitBuilder AddKafkaKit(this IServiceCollection services, Action<KafkaKitOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        var builder = services.AddKafkaKitCore();
        services.Configure(configure);
        return builder;
    }

    private static KafkaKitBuilder AddKafkaKitCore(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        var registry = services.FirstOrDefault(d => d.ServiceType == typeof(KafkaKitRegistry))?.ImplementationInstance as KafkaKitRegistry;
        if (registry is null)
        {
            registry = new KafkaKitRegistry();
            services.AddSingleton(registry);
            services.AddSingleton<KafkaKitClients>();
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KafkaKitOptions>, KafkaKitOptionsValidator>());
            services.AddOptions<KafkaKitOptions>().ValidateOnStart();

            // Declared topics are created before any consumer starts: this is registered ahead of every AddConsumer.
            services.TryAddSingleton(TopicDeclarationService.ConfluentAdmin);
            services.AddSingleton<IHostedService, TopicDeclarationService>();
        }

        return new KafkaKitBuilder(services, registry);
    }
}
