using Marten;

namespace Enrolment.Api.Features.Content;

/// <summary>Content: titles of training items.</summary>
public static class ContentConfiguration
{
    public static void AddContent(this WebApplicationBuilder builder) =>
        builder.Services.ConfigureMarten(opts => opts.Schema.For<ContentItem>());
}
