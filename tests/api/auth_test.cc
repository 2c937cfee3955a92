// Named bearer tokens with scopes: hashing, authentication, and the
// auth.tokens configuration with its refusals.
#include "api/auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "api/config.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

TEST(AuthTest, Sha256HexIsTheStandardDigest) {
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(AuthTest, ATokenNamesItsPrincipalAndScopes) {
  ScopeSet read;
  read.Add(Scope::kRead);
  TokenTable table({{"ci-bot", Sha256Hex("s3cret"), read},
                    {"ops", Sha256Hex("other"), ScopeSet::All()}});
  ASSERT_TRUE(table.enabled());
  auto bot = table.Authenticate("Bearer s3cret");
  ASSERT_TRUE(bot.has_value());
  EXPECT_EQ(bot->name, "ci-bot");
  EXPECT_TRUE(bot->scopes.Has(Scope::kRead));
  EXPECT_FALSE(bot->scopes.Has(Scope::kRun));
  EXPECT_EQ(table.Authenticate("Bearer other")->name, "ops");
  for (const char* bad : {"Bearer s3cre", "Bearer s3cret ", "s3cret",
                          "Basic s3cret", "", "Bearer "}) {
    EXPECT_FALSE(table.Authenticate(bad).has_value()) << bad;
  }
}

TEST(AuthTest, WithoutTokensEveryCallerIsAnonymousWithEveryScope) {
  TokenTable none;
  EXPECT_FALSE(none.enabled());
  auto caller = none.Authenticate("");
  ASSERT_TRUE(caller.has_value());
  EXPECT_EQ(caller->name, "anonymous");
  EXPECT_EQ(caller->scopes, ScopeSet::All());
}

TEST(AuthTest, ScopesHaveOneNameEach) {
  for (Scope s : kAllScopes) EXPECT_EQ(ScopeFromName(ScopeName(s)), s);
  EXPECT_FALSE(ScopeFromName("write").has_value());
  EXPECT_EQ(ScopeSet::All().ToJson(), json({"read", "run", "define", "admin"}));
}

TEST(AuthConfigTest, TokensParseWithNameHashAndScopes) {
  const std::string hash = Sha256Hex("t");
  auto c = ParseConfig({{"auth",
                         {{"tokens",
                           {{{"name", "ci-bot"},
                             {"sha256", hash},
                             {"scopes", {"read", "run"}}}}}}}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->auth_tokens.size(), 1u);
  EXPECT_EQ(c->auth_tokens[0].name, "ci-bot");
  EXPECT_EQ(c->auth_tokens[0].sha256, hash);
  EXPECT_EQ(c->auth_tokens[0].scopes.ToJson(), json({"read", "run"}));
}

TEST(AuthConfigTest, EachWrongTokenEntryIsNamed) {
  const std::string hash = Sha256Hex("t");
  auto c = ParseConfig(
      {{"auth",
        {{"tokens",
          {{{"name", "a"}, {"sha256", "plaintext-token"}, {"scopes", {"read"}}},
           {{"name", "a"}, {"sha256", hash}, {"scopes", {"write"}}},
           {{"name", "local"}, {"sha256", hash}, {"scopes", json::array()}},
           {{"name", "b c"},
            {"sha256", hash},
            {"scopes", {"run"}},
            {"token", "x"}}}}}}});
  ASSERT_FALSE(c.ok());
  const std::string error = c.status().message();
  for (const char* problem :
       {"auth.tokens[0].sha256: must be the SHA-256 of the token in 64 hex "
        "digits",
        "auth.tokens[1].name: 'a' names another token already",
        "auth.tokens[1].scopes: unknown scope \"write\"",
        "auth.tokens[2].name: 'local' is the name of callers without a token",
        "auth.tokens[2].scopes: must be a non-empty array",
        "auth.tokens[3].name: may hold only letters",
        "auth.tokens[3].token: unknown key"}) {
    EXPECT_THAT(error, HasSubstr(problem));
  }
}

TEST(AuthConfigTest, TheDeprecatedTokenFileGivesEveryScope) {
  test::TempDir dir;
  const std::string file = dir.Sub("tokens");
  std::ofstream(file) << "# ops\nalpha\n\nbeta\n";
  Config c;
  ScopeSet read;
  read.Add(Scope::kRead);
  c.auth_tokens = {{"ci-bot", Sha256Hex("gamma"), read}};
  c.http.auth_tokens_file = file;
  auto tokens = TokensOf(c);
  ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
  TokenTable table(*tokens);
  EXPECT_EQ(table.Authenticate("Bearer gamma")->scopes, read);
  auto alpha = table.Authenticate("Bearer alpha");
  ASSERT_TRUE(alpha.has_value());
  EXPECT_EQ(alpha->name, "tokens-file-1");
  EXPECT_EQ(alpha->scopes, ScopeSet::All());
  EXPECT_EQ(table.Authenticate("Bearer beta")->name, "tokens-file-2");
  c.http.auth_tokens_file = dir.Sub("missing");
  EXPECT_FALSE(TokensOf(c).ok());
}

}  // namespace
}  // namespace cde
