# %% [markdown]
# # Placeholder for 02_local_rule_packed
#
# Written on branch `tutorials`; this stub only lets the `docsite` branch build.

# %%
print("placeholder")
